"""Create (or update) the Hub webhook that sends events to the service, through `huggingface_hub.create_webhook`.

The webhook watches users, organisations or single repositories, on the ``repo`` domain only (content pushes; the
service ignores discussions anyway, and each webhook may fire at most 1,000 times a day), and carries the service's
secret. Registering again with the same target URL updates that webhook instead of adding a second one.

Example:
    >>> parse_watched(["org:acme", "model:alice/tiny-hubert"])
    [WebhookWatchedItem(type='org', name='acme'), WebhookWatchedItem(type='model', name='alice/tiny-hubert')]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from speat_metric.hub.webhook.auth import WebhookSecret
from speat_metric.hub.webhook.server import WEBHOOK_PATH

if TYPE_CHECKING:
    from huggingface_hub import HfApi, WebhookInfo, WebhookWatchedItem

WATCHED_KINDS = ("user", "org", "model")
DOMAINS = ["repo"]
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def parse_watched(items: Sequence[str]) -> list[WebhookWatchedItem]:
    """``KIND:NAME`` strings (``user:alice``, ``org:acme``, ``model:alice/tiny-hubert``) as watched items.

    Raises:
        ValueError: a string without a known kind or with an invalid name.
    """
    from huggingface_hub import WebhookWatchedItem

    watched = []
    for item in items:
        kind, _, name = item.partition(":")
        if kind not in WATCHED_KINDS or not name:
            raise ValueError(f"--watch {item!r}: expected user:NAME, org:NAME or model:OWNER/NAME")
        if (kind == "model") != ("/" in name) or name.count("/") > 1 or " " in name:
            expected = "OWNER/NAME" if kind == "model" else "a user or organisation name without '/'"
            raise ValueError(f"--watch {item!r}: the name of a {kind} must be {expected}")
        watched.append(WebhookWatchedItem(type=kind, name=name))
    return watched


def webhook_url(target_url: str) -> str:
    """The URL the Hub posts to: `target_url`, with ``/webhooks/speat`` added when it names no path.

    Raises:
        ValueError: not an http(s) URL, or plain http to a host other than this machine (the secret would travel
            in clear).
    """
    parts = urlsplit(target_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--target-url {target_url!r} is not an http(s) URL, e.g. https://OWNER-SPACE.hf.space")
    if parts.scheme == "http" and parts.hostname not in _LOCAL_HOSTS:
        raise ValueError(f"--target-url {target_url!r} uses plain http: the webhook secret would travel in clear; "
                         "use https")
    if parts.query or parts.fragment:
        raise ValueError(f"--target-url {target_url!r} has a query or fragment; give the service's URL only (the "
                         "secret goes in the X-Webhook-Secret header, never in the URL)")
    path = parts.path if parts.path not in ("", "/") else WEBHOOK_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def register_webhook(target_url: str, *, secret: WebhookSecret, watched: Sequence[str] = (),
                     endpoint: str | None = None, token: str | None = None) -> tuple[WebhookInfo, bool]:
    """Create the webhook, or update the one that already posts to the same URL.

    Args:
        target_url: the service's public URL (``/webhooks/speat`` is added when it has no path).
        secret: the webhook secret the service checks.
        watched: ``KIND:NAME`` items; none: the account of the token.
        endpoint: the Hub (default ``HF_ENDPOINT``).
        token: a Hub token (default: huggingface_hub's usual sources).

    Returns:
        The webhook as the Hub describes it, and whether it was created (False: updated).

    Raises:
        ValueError: a bad URL or watched item, or no token.
    """
    from huggingface_hub import HfApi, WebhookWatchedItem

    url = webhook_url(target_url)
    items = parse_watched(watched)
    api = HfApi(endpoint=endpoint, token=token)
    if not items:
        items = [WebhookWatchedItem(type="user", name=_account_name(api))]
    existing = next((hook for hook in api.list_webhooks() if hook.url == url), None)
    if existing is not None:
        return api.update_webhook(existing.id, url=url, watched=items, domains=DOMAINS, secret=secret.value), False
    return api.create_webhook(url=url, watched=items, domains=DOMAINS, secret=secret.value), True


def _account_name(api: HfApi) -> str:
    from huggingface_hub.errors import LocalTokenNotFoundError

    try:
        return api.whoami()["name"]
    except LocalTokenNotFoundError:
        raise ValueError("no Hugging Face token: set HF_TOKEN (or run `hf auth login`) to register the webhook") \
            from None


def describe(webhook: WebhookInfo) -> str:
    """One line about a webhook, without its secret."""
    watched = ", ".join(f"{item.type}:{item.name}" for item in webhook.watched)
    state = "disabled" if webhook.disabled else "active"
    return f"webhook {webhook.id} ({state}): POST {webhook.url} on {', '.join(webhook.domains)} events of {watched}"
