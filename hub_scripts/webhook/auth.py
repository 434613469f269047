"""The webhook secret: read from the environment or a file (never a command-line value, which `ps` shows), and
checked in constant time against the ``X-Webhook-Secret`` header the Hub sends with every event.

Example:
    >>> secret = WebhookSecret("s3cret-value")
    >>> secret.verify("s3cret-value"), secret.verify("guess"), secret.verify(None)
    (True, False, False)
    >>> secret
    WebhookSecret(***)
"""

from __future__ import annotations

import hmac
import logging
import os
import stat
from pathlib import Path

SECRET_ENV = "SPEAT_WEBHOOK_SECRET"
SECRET_HEADER = "X-Webhook-Secret"
MIN_SECRET_LENGTH = 8

logger = logging.getLogger(__name__)


class WebhookSecret:
    """A webhook secret that never prints itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if len(value) < MIN_SECRET_LENGTH:
            raise ValueError(f"the webhook secret is too short ({len(value)} characters); use at least "
                             f"{MIN_SECRET_LENGTH}, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'")
        if not value.isascii() or not value.isprintable():
            raise ValueError("the webhook secret must be printable ASCII (the Hub sends only ASCII secrets)")
        self._value = value

    @property
    def value(self) -> str:
        """The secret itself, for registering the webhook on the Hub and for log redaction only."""
        return self._value

    def verify(self, received: str | None) -> bool:
        """True when `received` (the header's value) is the secret; compared in constant time."""
        if received is None:
            return False
        return hmac.compare_digest(received.encode("utf-8", "surrogateescape"), self._value.encode())

    def __repr__(self) -> str:
        return "WebhookSecret(***)"

    __str__ = __repr__


def load_secret(secret_file: Path | None = None) -> WebhookSecret:
    """The secret from `secret_file` when given, else from ``$SPEAT_WEBHOOK_SECRET``.

    Raises:
        ValueError: neither is set, the file cannot be read or is empty, or the secret is unusable.
    """
    if secret_file is not None:
        try:
            text = Path(secret_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(f"--secret-file {str(secret_file)!r} cannot be read ({error.__class__.__name__})") \
                from None
        value = text.strip()
        if not value:
            raise ValueError(f"--secret-file {str(secret_file)!r} is empty; write the webhook secret in it")
        if os.name == "posix" and Path(secret_file).stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            logger.warning("the secret file is readable by other users; chmod 600 it",
                           extra={"fields": {"event": "secret.permissions"}})
        return WebhookSecret(value)
    value = os.environ.get(SECRET_ENV, "").strip()
    if not value:
        raise ValueError(f"no webhook secret: set {SECRET_ENV} or give --secret-file FILE (the secret you set, or "
                         "will set with --register, on the Hub webhook)")
    return WebhookSecret(value)
