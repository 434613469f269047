"""Hub webhooks, for both ways speat follows pushes (the self-hosted service, `speat_metric.hub.webhook`, and a Job
per event, `speat_metric.hub.on_event`): the webhook secret, the ``--watch`` items, and the webhook that posts to a
service's URL (`register_webhook`: the ``repo`` domain only, with the secret; registering again with the same URL
updates it).

The secret comes from ``$SPEAT_WEBHOOK_SECRET`` or a file (never the command line, which `ps` shows) and is checked
in constant time against the ``X-Webhook-Secret`` header the Hub sends with every event.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from huggingface_hub import WebhookInfo, WebhookWatchedItem

WEBHOOK_PATH = "/webhooks/speat"
DOMAINS = ["repo"]
SECRET_ENV = "SPEAT_WEBHOOK_SECRET"
SECRET_HEADER = "X-Webhook-Secret"
MIN_SECRET_LENGTH = 8


class WebhookSecret:
    """A webhook secret that never prints itself (``WebhookSecret(***)``)."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        if len(value) < MIN_SECRET_LENGTH:
            raise ValueError(f"the webhook secret is too short ({len(value)} characters); use at least "
                             f"{MIN_SECRET_LENGTH}, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'")
        if not value.isascii() or not value.isprintable():
            raise ValueError("the webhook secret must be printable ASCII (the Hub sends only ASCII secrets)")
        self.value = value

    def verify(self, received: str | None) -> bool:
        """Whether `received`, the header's value, is the secret."""
        return received is not None and hmac.compare_digest(received.encode("utf-8", "surrogateescape"),
                                                            self.value.encode())

    def __repr__(self) -> str:
        return "WebhookSecret(***)"


def load_secret(secret_file: Path | None = None) -> WebhookSecret:
    """The secret in `secret_file`, else in ``$SPEAT_WEBHOOK_SECRET``; a one-line ValueError when missing or bad."""
    if secret_file is None:
        if not (value := os.environ.get(SECRET_ENV, "").strip()):
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


def parse_watched(items: Sequence[str]) -> list[WebhookWatchedItem]:
    """``KIND:NAME`` strings as watched items; `ValueError` for an unknown kind or an invalid name."""
    from huggingface_hub import WebhookWatchedItem

    watched = []
    for item in items:
        kind, _, name = item.partition(":")
        if kind not in ("user", "org", "model") or not name:
            raise ValueError(f"--watch {item!r}: expected user:NAME, org:NAME or model:OWNER/NAME")
        if (kind == "model") != ("/" in name) or name.count("/") > 1 or " " in name:
            expected = "OWNER/NAME" if kind == "model" else "a user or organisation name without '/'"
            raise ValueError(f"--watch {item!r}: the name of a {kind} must be {expected}")
        watched.append(WebhookWatchedItem(type=kind, name=name))
    return watched


def webhook_url(target_url: str) -> str:
    """`target_url`, with ``/webhooks/speat`` when it names no path; `ValueError` unless https (or http to this
    machine) without query or fragment (a secret in the URL would end up in logs)."""
    parts = urlsplit(target_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--target-url {target_url!r} is not an http(s) URL, e.g. https://OWNER-SPACE.hf.space")
    if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        raise ValueError(f"--target-url {target_url!r} uses plain http: the webhook secret would travel in clear; "
                         "use https")
    if parts.query or parts.fragment:
        raise ValueError(f"--target-url {target_url!r} has a query or fragment; give the service's URL only (the "
                         "secret goes in the X-Webhook-Secret header, never in the URL)")
    return urlunsplit((parts.scheme, parts.netloc, parts.path if parts.path not in ("", "/") else WEBHOOK_PATH, "", ""))


def register_webhook(target_url: str, *, secret: WebhookSecret, watched: Sequence[str] = (),
                     endpoint: str | None = None, token: str | None = None) -> tuple[WebhookInfo, bool]:
    """Create the webhook, or update the one posting to the same URL (no `watched` items: the token's account);
    returns it and whether it was created. `ValueError` for a bad URL or watched item, or no token."""
    from huggingface_hub import HfApi, WebhookWatchedItem
    from huggingface_hub.errors import LocalTokenNotFoundError

    url, items, api = webhook_url(target_url), parse_watched(watched), HfApi(endpoint=endpoint, token=token)
    try:
        items = items or [WebhookWatchedItem(type="user", name=api.whoami()["name"])]
    except LocalTokenNotFoundError:
        raise ValueError("no Hugging Face token: set HF_TOKEN (or run `hf auth login`) to register the webhook") \
            from None
    existing = next((hook for hook in api.list_webhooks() if hook.url == url), None)
    if existing is not None:
        return api.update_webhook(existing.id, url=url, watched=items, domains=DOMAINS, secret=secret.value), False
    return api.create_webhook(url=url, watched=items, domains=DOMAINS, secret=secret.value), True


def describe(webhook: WebhookInfo) -> str:
    """One line about a webhook, without its secret."""
    watched = ", ".join(f"{item.type}:{item.name}" for item in webhook.watched)
    target = f"POST {webhook.url}" if webhook.job is None else f"start a Job ({' '.join(webhook.job.command)})"
    return (f"webhook {webhook.id} ({'disabled' if webhook.disabled else 'active'}): {target} on "
            f"{', '.join(webhook.domains)} events of {watched}")
