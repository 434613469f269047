"""Create (or update) the Hub webhook that sends events to the service, through `huggingface_hub.create_webhook`.

It watches users, organisations or single repositories on the ``repo`` domain only (content pushes; each webhook may
fire 1,000 times a day) and carries the service's secret. Registering again with the same URL updates that webhook.

Example:
    >>> parse_watched(["org:acme", "model:alice/tiny-hubert"])
    [WebhookWatchedItem(type='org', name='acme'), WebhookWatchedItem(type='model', name='alice/tiny-hubert')]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from speat_metric.hub.webhook.auth import WebhookSecret

if TYPE_CHECKING:
    from huggingface_hub import WebhookInfo, WebhookWatchedItem

WEBHOOK_PATH = "/webhooks/speat"
DOMAINS = ["repo"]


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
