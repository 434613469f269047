"""Registering the webhook on the (test) Hub through huggingface_hub.create_webhook, and `--register` end to end."""

import doctest

import pytest
from http_servers import HubServer
from hub_testing import hub_env, run_speat

from speat_metric.hub import webhooks as register
from speat_metric.hub.webhooks import WebhookSecret, parse_watched, register_webhook, webhook_url

TOKEN = "hf_registerTOKEN0123456789abcdef"
SECRET = "register-SECRET-0123456789"


@pytest.fixture
def hub():
    with HubServer(tokens={TOKEN: "speat-bot-user"}) as server:
        yield server


def test_module_example():
    assert doctest.testmod(register).failed == 0


def test_the_webhook_is_created_once_then_updated(hub):
    webhook, created = register_webhook("https://acme-speat.hf.space", secret=WebhookSecret(SECRET),
                                        watched=["org:acme", "model:alice/tiny-hubert"], endpoint=hub.url, token=TOKEN)
    assert created and webhook.url == "https://acme-speat.hf.space/webhooks/speat"
    [stored] = hub.webhooks.values()
    assert stored["secret"] == SECRET and stored["domains"] == ["repo"]
    assert stored["watched"] == [{"type": "org", "name": "acme"}, {"type": "model", "name": "alice/tiny-hubert"}]
    again, created = register_webhook("https://acme-speat.hf.space/webhooks/speat", secret=WebhookSecret(SECRET),
                                      watched=["user:bob"], endpoint=hub.url, token=TOKEN)
    assert not created and again.id == webhook.id and len(hub.webhooks) == 1
    assert hub.webhooks[webhook.id]["watched"] == [{"type": "user", "name": "bob"}]
    assert SECRET not in register.describe(again)


def test_without_watched_items_the_token_account_is_watched(hub):
    webhook, _ = register_webhook("https://acme-speat.hf.space", secret=WebhookSecret(SECRET), endpoint=hub.url,
                                  token=TOKEN)
    assert [(item.type, item.name) for item in webhook.watched] == [("user", "speat-bot-user")]


@pytest.mark.parametrize("url,message", [
    ("acme-speat.hf.space", "is not an http(s) URL"),
    ("http://acme-speat.hf.space", "uses plain http: the webhook secret would travel in clear"),
    ("https://acme-speat.hf.space/webhooks/speat?secret=abc", "has a query or fragment"),
])
def test_bad_target_urls_are_refused(url, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        webhook_url(url)


def test_local_http_and_explicit_paths_are_kept():
    assert webhook_url("http://127.0.0.1:7860") == "http://127.0.0.1:7860/webhooks/speat"
    assert webhook_url("https://example.org/hooks/hub") == "https://example.org/hooks/hub"


@pytest.mark.parametrize("item,message", [
    ("team:acme", "expected user:NAME, org:NAME or model:OWNER/NAME"),
    ("org:", "expected user:NAME"),
    ("model:tiny-hubert", "the name of a model must be OWNER/NAME"),
    ("user:alice/bob", "the name of a user must be a user or organisation name without '/'"),
])
def test_bad_watched_items_are_refused(item, message):
    with pytest.raises(ValueError, match=message):
        parse_watched([item])


def test_register_from_the_command_line_prints_no_secret(hub, tmp_path):
    env = hub_env(hub, tmp_path, HF_TOKEN=TOKEN, SPEAT_WEBHOOK_SECRET=SECRET)
    completed = run_speat("hub", "webhook", "--register", "--target-url", "http://127.0.0.1:7860", "--watch",
                          "org:acme", env=env, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    [webhook_id] = hub.webhooks
    assert completed.stdout == (f"created webhook {webhook_id} (active): POST http://127.0.0.1:7860/webhooks/speat on "
                                "repo events of org:acme\n")
    assert SECRET not in completed.stdout + completed.stderr and TOKEN not in completed.stdout + completed.stderr
