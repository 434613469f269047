"""The webhook secret: from the environment or a file (never a command-line value, which `ps` shows), checked in
constant time against the ``X-Webhook-Secret`` header the Hub sends with every event.

Example:
    >>> secret = WebhookSecret("s3cret-value")
    >>> secret.verify("s3cret-value"), secret.verify("guess"), secret.verify(None), secret
    (True, False, False, WebhookSecret(***))
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

SECRET_ENV = "SPEAT_WEBHOOK_SECRET"
SECRET_HEADER = "X-Webhook-Secret"
MIN_SECRET_LENGTH = 8


class WebhookSecret:
    """A webhook secret that never prints itself."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        if len(value) < MIN_SECRET_LENGTH:
            raise ValueError(f"the webhook secret is too short ({len(value)} characters); use at least "
                             f"{MIN_SECRET_LENGTH}, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'")
        if not value.isascii() or not value.isprintable():
            raise ValueError("the webhook secret must be printable ASCII (the Hub sends only ASCII secrets)")
        self.value = value

    def verify(self, received: str | None) -> bool:
        """True when `received` (the header's value) is the secret."""
        return received is not None and hmac.compare_digest(received.encode("utf-8", "surrogateescape"),
                                                            self.value.encode())

    def __repr__(self) -> str:
        return "WebhookSecret(***)"


def load_secret(secret_file: Path | None = None) -> WebhookSecret:
    """The secret from `secret_file` when given, else from ``$SPEAT_WEBHOOK_SECRET``.

    Raises:
        ValueError: neither is set, the file cannot be read or is empty, or the secret is unusable.
    """
    if secret_file is None:
        value = os.environ.get(SECRET_ENV, "").strip()
        if not value:
            raise ValueError(f"no webhook secret: set {SECRET_ENV} or give --secret-file FILE (the secret you set, "
                             "or will set with --register, on the Hub webhook)")
        return WebhookSecret(value)
    try:
        value = Path(secret_file).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"--secret-file {str(secret_file)!r} cannot be read ({error.__class__.__name__})") from None
    if not value:
        raise ValueError(f"--secret-file {str(secret_file)!r} is empty; write the webhook secret in it")
    return WebhookSecret(value)
