"""speat_metric.hub.source: a card links only what exists (the model's repo, the operator's Space or page, the papers)
and gives an install line only when the operator names a place that has this speat."""

from __future__ import annotations

import argparse
import dataclasses
import re

import pytest
import yaml
from http_servers import HubServer
from hub_testing import hub_env, run_speat
from huggingface_hub import parse_eval_result_entries
from tiny_models import save_tiny_model

from speat_metric import __version__
from speat_metric.evaluation import EvaluationSettings, evaluate_models
from speat_metric.hub.benchmark import Benchmark
from speat_metric.hub.card import render_card
from speat_metric.hub.card_merge import merge_card
from speat_metric.hub.hub import HubClient
from speat_metric.hub.results_dataset import dataset_card
from speat_metric.hub.source import PAPERS, SpeatSource, add_source_options, resolve_source, source_from_options

REPO = "owner/tiny"
REVISION = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "hf_sourceTOKEN0123456789abcdef"
WHEEL = f"speat-{__version__}-py3-none-any.whl"
URL = re.compile(r"https?://[^\s)\]'\"<>`]+")
BENCHMARK = Benchmark("op/speat-benchmark", "c" * 40, ("gender",), "https://huggingface.co/datasets/op/speat-benchmark")
"""The operator's benchmark dataset (its page is one of the operator's datasets, which a card may link)."""


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("source")
    model = save_tiny_model("wav2vec2", folder / "tiny")
    settings = EvaluationSettings(tests=("gender",), num_permutations=200, progress=False, cache_dir=folder / "cache")
    return [record.replace(model=dataclasses.replace(record.model, name=REPO, revision=REVISION))
            for record in evaluate_models([str(model)], settings)]


@pytest.fixture
def hub():
    with HubServer(tokens={TOKEN: "op"}) as server:
        server.create_repo("op/speat", repo_type="space")
        server.commit("op/speat", {WHEEL: b"PK\x03\x04 a wheel", "app.py": b"print()"}, repo_type="space")
        server.create_repo("op/empty", repo_type="space")
        yield server


def card_text(records, source: SpeatSource) -> str:
    content = render_card(records, repo_id=REPO, allow_synthetic=True, source=source, benchmark=BENCHMARK)
    return merge_card(None, content) + content.eval_file


def urls(text: str) -> set[str]:
    return {url.rstrip(".,") for url in URL.findall(text)}


def test_by_default_a_card_links_only_the_papers_and_names_no_install(records):
    text = card_text(records, SpeatSource())
    assert urls(text) <= {*PAPERS.values(), BENCHMARK.url} and urls(text)
    assert "pip install" not in text and "pypi" not in text.lower()
    assert f"Reproduce with speat {__version__}:" in text


def test_a_card_links_only_the_model_the_operators_space_the_papers_and_the_source_url(records, hub):
    client = HubClient(token=TOKEN, endpoint=hub.url)
    source = resolve_source(space="op/speat", source_url="https://code.example.org/speat", client=client)
    head = client.head("op/speat", repo_type="space")
    assert source.install == f"{hub.url}/spaces/op/speat/resolve/{head}/{WHEEL}"  # pinned to the Space's commit
    text = card_text(records, source)
    allowed = {*PAPERS.values(), "https://code.example.org/speat", source.install, f"https://huggingface.co/{REPO}",
               BENCHMARK.url}
    allowed |= {url for url in urls(text) if url.startswith((f"{hub.url}/spaces/op/", f"{hub.url}/datasets/op/"))}
    assert urls(text) <= allowed
    assert f"pip install {source.install}" in text and "[source](https://code.example.org/speat)" in text
    content = render_card(records, repo_id=REPO, allow_synthetic=True, source=source, benchmark=BENCHMARK)
    entries = parse_eval_result_entries(yaml.safe_load(content.eval_file))
    assert {(entry.source_url, entry.source_name, entry.source_user) for entry in entries} == {
        ("https://code.example.org/speat", f"speat {__version__}", "op")}  # the operator: the Space's owner
    assert {result.source_url for result in content.eval_results} == {"https://code.example.org/speat"}


def test_a_release_is_an_install_line_and_links_nothing_else(records):
    source = resolve_source(requirement="speat==0.2.0")
    text = card_text(records, source)
    assert "pip install speat==0.2.0" in text and urls(text) <= {*PAPERS.values(), BENCHMARK.url}
    assert resolve_source(requirement="speat @ https://files.example.org/speat-0.2.0-py3-none-any.whl").install == (
        "https://files.example.org/speat-0.2.0-py3-none-any.whl")


@pytest.mark.parametrize(("options", "message"), [
    (dict(space="op/empty"), f"--source-space op/empty has no {WHEEL} .*publish it first with `speat hub "
                             "publish-space --space op/empty`"),
    (dict(space="op/speat", requirement="speat==1.0"), "--source-space and --requirement both say how to install"),
    (dict(source_url="ftp://x.org/speat"), "--source-url 'ftp://x.org/speat' is not an http\\(s\\) URL"),
    (dict(requirement="numpy==2"), "must name the speat distribution itself"),
    (dict(space="nope"), "--source-space 'nope' is not a Hub repository id"),
])
def test_what_cannot_be_stood_behind_is_refused(hub, options, message):
    with pytest.raises(ValueError, match=message):
        resolve_source(client=HubClient(token=TOKEN, endpoint=hub.url), **options)


def test_a_new_results_dataset_card_links_speat_only_when_told_where():
    assert "pypi" not in dataset_card(None, "op/results") and "[speat](" not in dataset_card(None, "op/results")
    told = dataset_card(None, "op/results", SpeatSource(url="https://code.example.org/speat"))
    assert "[speat](https://code.example.org/speat)" in told


def test_the_options_parse_into_a_source_without_touching_the_hub_when_none_is_given():
    parser = argparse.ArgumentParser()
    add_source_options(parser)
    assert source_from_options(parser.parse_args([])) == SpeatSource()
    given = source_from_options(parser.parse_args(["--source-url", "https://code.example.org/s", "--requirement",
                                                   "speat==0.3"]))
    assert given == SpeatSource(url="https://code.example.org/s", install="speat==0.3")


def test_speat_hub_render_takes_the_operators_space(records, hub, tmp_path):
    for record in records:
        record.save(tmp_path / "results")
    env = hub_env(hub, tmp_path, HF_TOKEN=TOKEN)
    rendered = run_speat("hub", "render", str(tmp_path / "results"), "--allow-synthetic", "--source-space", "op/speat",
                         env=env, cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    assert f"pip install {hub.url}/spaces/op/speat/resolve/" in rendered.stdout
    refused = run_speat("hub", "render", str(tmp_path / "results"), "--allow-synthetic", "--source-space", "op/empty",
                        env=env, cwd=tmp_path)
    assert refused.returncode == 2 and "has no speat-" in refused.stderr and refused.stdout == ""
