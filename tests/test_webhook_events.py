"""Hub webhook payloads: parsing (the Hub's documented format) and which events ask for work (event_to_work)."""

import copy
import doctest
import json

import pytest

from speat_metric.hub import webhook_events as events
from speat_metric.hub.webhook_events import (
    IgnoredEvent,
    PayloadError,
    WorkItem,
    content_update_payload,
    event_to_work,
    parse_payload,
)

OLD, NEW = "ce9a4674fa833a68d5a73ec355f0ea95eedd60b7", "575db8b7a51b6f85eb06eee540738584589f131c"

# The Hub's documentation example of a payload when a pull request is opened (docs/hub/webhooks.md).
PR_OPENED = {
    "event": {"action": "create", "scope": "discussion"},
    "repo": {"type": "model", "name": "openai-community/gpt2", "id": "621ffdc036468d709f17434d", "private": False,
             "url": {"web": "https://huggingface.co/openai-community/gpt2",
                     "api": "https://huggingface.co/api/models/openai-community/gpt2"},
             "owner": {"id": "628b753283ef59b5be89e937"}},
    "discussion": {"id": "6399f58518721fdd27fc9ca9", "title": "Update co2 emissions",
                   "url": {"web": "https://huggingface.co/openai-community/gpt2/discussions/19",
                           "api": "https://huggingface.co/api/models/openai-community/gpt2/discussions/19"},
                   "status": "open", "author": {"id": "61d2f90c3c2083e1c08af22d"}, "num": 19, "isPullRequest": True,
                   "changes": {"base": "refs/heads/main"}},
    "comment": {"id": "6399f58518721fdd27fc9caa", "author": {"id": "61d2f90c3c2083e1c08af22d"},
                "content": "Add co2 emissions information to the model card", "hidden": False,
                "url": {"web": "https://huggingface.co/openai-community/gpt2/discussions/19#6399f58518721fdd27fc9caa"}},
    "webhook": {"id": "6390e855e30d9209411de93b", "version": 3},
}

# A push to main, with the documented repo and updatedRefs fields.
PUSH = {
    "event": {"action": "update", "scope": "repo.content"},
    "repo": {"type": "model", "name": "some-user/some-repo", "id": "6366c000a2abcdf2fd69a080", "private": False,
             "url": {"web": "https://huggingface.co/some-user/some-repo",
                     "api": "https://huggingface.co/api/models/some-user/some-repo"},
             "headSha": NEW, "tags": ["license:other", "has_space"], "owner": {"id": "61d2000c3c2083e1c08af22d"}},
    "updatedRefs": [{"ref": "refs/heads/main", "oldSha": OLD, "newSha": NEW},
                    {"ref": "refs/tags/test", "oldSha": None, "newSha": NEW}],
    "webhook": {"id": "6390e855e30d9209411de93b", "version": 3},
}


def changed(payload: dict, **changes) -> bytes:
    """`payload` with dotted-path changes (``repo__type="dataset"``; None deletes the key), as JSON bytes."""
    payload = copy.deepcopy(payload)
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        target = payload
        for parent in parents:
            target = target[parent]
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return json.dumps(payload).encode()


def test_a_push_to_main_asks_for_an_annotation_of_the_new_head():
    decision = event_to_work(json.dumps(PUSH).encode())
    assert decision == WorkItem("some-user/some-repo", NEW, OLD, private=False)


def test_head_sha_is_read_as_the_hub_spells_it():
    payload = parse_payload(changed(PUSH, updatedRefs=None))
    assert payload.repo.head_sha == NEW  # huggingface_hub 2.4's own model would drop it
    assert event_to_work(payload) == WorkItem("some-user/some-repo", NEW, None)


def test_a_private_repository_is_marked_private():
    assert event_to_work((changed(PUSH, repo__private=True))).private


def test_a_narrower_content_scope_counts_as_a_content_update():
    assert isinstance(event_to_work((changed(PUSH, event__scope="repo.content.lfs"))), WorkItem)


@pytest.mark.parametrize("changes,reason", [
    (dict(repo__type="dataset"), "dataset repository: only model repositories are annotated"),
    (dict(repo__type="bucket"), "bucket repository: only model repositories are annotated"),
    (dict(event__scope="repo.config"), "repo.config update event: only content updates"),
    (dict(event__scope="repo", event__action="create"), "repo create event"),
    (dict(updatedRefs=[{"ref": "refs/pr/3", "oldSha": None, "newSha": NEW}]),
     "the push updates refs/pr/3, not the main branch"),
    (dict(updatedRefs=[{"ref": "refs/tags/v1", "oldSha": None, "newSha": NEW},
                       {"ref": "refs/heads/dev", "oldSha": OLD, "newSha": NEW}]),
     "the push updates refs/tags/v1, refs/heads/dev, not the main branch"),
    (dict(updatedRefs=[{"ref": "refs/heads/main", "oldSha": OLD, "newSha": None}]), "the main branch was deleted"),
    (dict(updatedRefs=None, repo__headSha=None), "the event names no commit"),
])
def test_other_events_are_ignored_with_the_reason(changes, reason):
    decision = event_to_work((changed(PUSH, **changes)))
    assert isinstance(decision, IgnoredEvent) and reason in decision.reason


def test_discussion_events_are_ignored_and_our_own_pull_requests_are_named():
    payload = parse_payload(json.dumps(PR_OPENED).encode())
    assert event_to_work(payload).reason == "discussion event on pull request #19: only content updates are annotated"
    ours = event_to_work(payload, own_user_ids={"61d2f90c3c2083e1c08af22d"})
    assert ours == IgnoredEvent("event on our own pull request #19")


@pytest.mark.parametrize("body,message", [
    (b"{not json", "the body is not JSON"),
    (b"[]", "not a Hub webhook payload: body: "),
    (changed(PUSH, repo__name=None), r"not a Hub webhook payload: repo\.name: Field required"),
    (changed(PUSH, event__action="explode"), r"event\.action: Input should be"),
    (changed(PUSH, webhook__version=4), "webhook.version 4 is not supported: this service reads version 3"),
])
def test_malformed_payloads_are_errors_naming_the_field(body, message):
    with pytest.raises(PayloadError, match=message):
        parse_payload(body)


@pytest.mark.parametrize("changes,message", [
    (dict(repo__name="not a repo/id!"), "repo.name 'not a repo/id!' is not a Hub repository id"),
    (dict(repo__name="gpt2"), "expected owner/name"),
    (dict(updatedRefs=[{"ref": "refs/heads/main", "oldSha": OLD, "newSha": "main; rm -rf /"}]),
     "newSha 'main; rm -rf /' is not a commit sha"),
    (dict(updatedRefs=[{"ref": "refs/heads/main", "oldSha": "HEAD~1", "newSha": NEW}]), "oldSha 'HEAD~1'"),
])
def test_invalid_names_and_shas_are_errors(changes, message):
    with pytest.raises(PayloadError, match=message.replace(".", r"\.").replace("(", r"\(")):
        event_to_work((changed(PUSH, **changes)))


def test_the_payload_builder_makes_what_the_hub_sends():
    built = content_update_payload("some-user/some-repo", NEW, base_revision=OLD)
    assert set(built) == set(PUSH) and set(built["repo"]) <= set(PUSH["repo"]) | {"tags"}
    assert event_to_work(built) == event_to_work(json.dumps(PUSH).encode())  # a dict, as a Job reads WEBHOOK_PAYLOAD
    on_a_branch = content_update_payload("some-user/some-repo", NEW, ref="refs/pr/1")
    assert event_to_work(json.dumps(on_a_branch)).reason.startswith("the push updates refs/pr/1")


def test_module_example():
    assert doctest.testmod(events).failed == 0
