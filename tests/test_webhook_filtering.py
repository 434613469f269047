"""Screening a pushed commit through the Hub API (the test Hub on 127.0.0.1): our own commits, card-only pushes,
speech encoders or not."""

import json

import pytest
import transformers
from http_servers import HubServer
from tiny_models import KINDS

from speat_metric.hub import SPEAT_TITLE_PREFIX
from speat_metric.hub.webhook_events import Screening, WorkItem, screen_commit

REPO = "alice/tiny-model"
WEIGHTS = {"model.safetensors": b"weights v1"}


def config_json(kind: str) -> bytes:
    if kind == "bert":
        return transformers.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2).to_json_string() \
            .encode()
    _, config_class, overrides, _ = KINDS[kind]
    return config_class(**overrides).to_json_string().encode()


@pytest.fixture
def screen(hub_server: HubServer, tmp_path):
    def screen(revision: str, base: str | None = None, repo: str = REPO, origin: str = "event") -> Screening:
        return screen_commit(WorkItem(repo, revision, base, origin=origin), endpoint=hub_server.url,
                             cache_dir=tmp_path / "hf-cache")

    return screen


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert", "data2vec-audio"])
def test_a_speech_encoder_is_annotated(hub_server, screen, kind):
    hub_server.create_repo(REPO)
    commit = hub_server.commit(REPO, {"config.json": config_json(kind), **WEIGHTS}, message="Upload model")
    assert screen(commit) == Screening(True, f"a {kind!r} speech encoder", kind)


def test_a_text_model_is_ignored_with_the_reason(hub_server, screen):
    hub_server.create_repo(REPO)
    commit = hub_server.commit(REPO, {"config.json": config_json("bert"), **WEIGHTS})
    verdict = screen(commit)
    assert not verdict.annotate and verdict.model_type == "bert"
    assert verdict.reason.startswith(f"{REPO!r} is a 'bert' model, not a speech encoder speat can read")


def test_a_repository_without_config_or_with_a_broken_one_is_ignored(hub_server, screen):
    hub_server.create_repo(REPO)
    no_config = hub_server.commit(REPO, {"melhubert.ckpt": b"weights"})
    assert screen(no_config) == Screening(False, "no config.json at this commit: not a transformers model speat reads")
    broken = hub_server.commit(REPO, {"config.json": b"{model_type: hubert"})
    assert screen(broken) == Screening(False, "config.json at this commit is not readable JSON (JSONDecodeError)")


def test_commits_are_judged_by_the_files_they_touch_not_by_words_in_their_message(hub_server, screen):
    hub_server.create_repo(REPO)
    model = hub_server.commit(REPO, {"config.json": config_json("hubert"), **WEIGHTS})
    ours = hub_server.commit(REPO, {"README.md": b"# card\n", ".eval_results/speat.yaml": b"- x\n"},
                             message=f"{SPEAT_TITLE_PREFIX} Add SpEAT social-bias results\n\ndescription")
    assert not screen(ours, model).annotate  # our card commit: only the card changed
    retrained = hub_server.commit(REPO, {"model.safetensors": b"weights v2"},
                                  message="Retrain after the speat-bot results (see the [speat-bot] PR)")
    assert screen(retrained, ours) == Screening(True, "a 'hubert' speech encoder", "hubert")


def test_a_push_that_changes_only_the_card_is_ignored(hub_server, screen):
    hub_server.create_repo(REPO)
    model = hub_server.commit(REPO, {"config.json": config_json("hubert"), **WEIGHTS})
    card = hub_server.commit(REPO, {"README.md": b"# My model\n", ".eval_results/speat.yaml": b"- x\n"},
                             message="Merge pull request #1: card")
    verdict = screen(card, model)
    assert verdict == Screening(False, "only the model card changed (.eval_results/speat.yaml, README.md); the model "
                                "is unchanged")
    assert screen(card) == verdict  # without the event's oldSha, the parent commit is the base
    weights = hub_server.commit(REPO, {"README.md": b"# My model, retrained\n", "model.safetensors": b"weights v2"})
    assert screen(weights, card).annotate
    # a push of several commits is judged as a whole, from the event's oldSha
    assert screen(weights, model).annotate
    same = hub_server.commit(REPO, {"model.safetensors": b"weights v2"})
    assert screen(same, weights) == Screening(False, "the push changes no file")


def test_a_reconciled_commit_is_screened_whole(hub_server, screen):
    """At a restart, main's head may be an owner's card edit after a model that was never annotated: reconciliation
    asks whether main is annotated, not what the last push changed."""
    hub_server.create_repo(REPO)
    model = hub_server.commit(REPO, {"config.json": config_json("hubert"), **WEIGHTS})
    card = hub_server.commit(REPO, {"README.md": b"# My model\n"})
    assert not screen(card, model).annotate
    assert screen(card, origin="reconciliation") == Screening(True, "a 'hubert' speech encoder", "hubert")


def test_a_base_commit_that_is_gone_or_all_zeros_means_anything_may_have_changed(hub_server, screen):
    """Squashed or force-pushed history: the event's oldSha no longer exists, so the new head is screened in full
    (and annotated) rather than ignored as a commit that "no longer exists"."""
    hub_server.create_repo(REPO)
    head = hub_server.commit(REPO, {"config.json": config_json("hubert"), **WEIGHTS})
    assert screen(head, "c" * 40) == Screening(True, "a 'hubert' speech encoder", "hubert")
    assert screen(head, "0" * 40) == Screening(True, "a 'hubert' speech encoder", "hubert")


def test_gone_repositories_and_commits_are_ignored(hub_server, screen):
    assert screen("a" * 40, repo="alice/deleted") == Screening(
        False, "the repository does not exist, or our token cannot read it")
    hub_server.create_repo(REPO)
    assert screen("b" * 40) == Screening(False, f"commit {'b' * 40} no longer exists in the repository")


def test_hub_failures_are_raised_so_that_the_job_is_retried(hub_server, screen):
    hub_server.create_repo(REPO)
    commit = hub_server.commit(REPO, {"config.json": config_json("hubert")})
    hub_server.fail(f"/api/models/{REPO}/commits/{commit}", 400)  # (5xx are retried by huggingface_hub itself)
    with pytest.raises(Exception, match="Bad request"):
        screen(commit)
    assert screen(commit).annotate


def test_the_config_is_read_at_the_event_commit_not_at_main(hub_server, screen):
    hub_server.create_repo(REPO)
    speech = hub_server.commit(REPO, {"config.json": config_json("wavlm")})
    hub_server.commit(REPO, {"config.json": json.dumps({"model_type": "bert"}).encode()})
    assert screen(speech).annotate
