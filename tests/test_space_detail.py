"""speat_metric.space.detail: a model's results, how each was made, and the command that reproduces it."""

from __future__ import annotations

import shlex

import pytest
from test_space_fixtures import bundled, of

from speat_metric.cli import main
from speat_metric.report import reproduce_command
from speat_metric.results import load_records
from speat_metric.space.detail import model_detail
from speat_metric.space.rows import build_table


@pytest.fixture(scope="module")
def records():
    return bundled()


def test_the_reproduce_command_recomputes_the_bundled_record(records, tmp_path):
    record = of(records, "mfcc", "gender")
    command = reproduce_command([record])
    assert command == ("speat evaluate mfcc --stimuli demo --tests gender --permutations 10000 --seed 0")
    arguments = shlex.split(command)[1:] + ["--out", str(tmp_path), "--no-progress", "--no-cache"]
    assert main(arguments) == 0
    [again] = load_records(tmp_path)
    assert again.speat.effect_size == pytest.approx(record.speat.effect_size, rel=1e-6)
    assert again.speat.p_value == pytest.approx(record.speat.p_value, rel=1e-6)


def test_commands_carry_every_setting_that_changes_a_result(records):
    per_layer = [record for record in records if record.model.name == "random:melhubert-small"
                 and record.pooling["layer_pooling"] == "per-layer"]
    assert "--pooling per-layer" in reproduce_command(per_layer)
    one = per_layer[0]
    changed = one.replace(pooling={"frame_pooling": "max", "layer_pooling": "layer", "layer": 2}, profile="s3prl")
    command = reproduce_command([changed])
    assert "--pooling layer --layer 2" in command and "--frame-pooling max" in command
    assert "--profile s3prl" in command
    hub = {"kind": "hub", "repo_id": "me/stimuli", "revision": "main", "commit": "c0ffee"}
    assert "--stimuli me/stimuli@c0ffee" in reproduce_command([one.replace(stimuli={**one.stimuli, "source": hub})])


def test_model_detail_lists_results_provenance_and_card(records):
    table = build_table(records)
    text = model_detail(table, "random:melhubert-small")
    views = [record for record in records if record.model.name == "random:melhubert-small"]
    assert text.count("| random:melhubert-small |") == len(views)
    assert "not a Hub model, so no model card" in text and "Synthetic stimuli" in text
    for version in ("speat", "numpy", "torch", "transformers"):
        assert f"{version} {views[0].environment[version]}" in text
    assert "10,000 random partitions" in text and "seed 0" in text
    assert text.count("```bash") == 2  # mean pooling and per-layer: one command each
    checkpoints = model_detail(table, "models/pretraining-run")
    assert "checkpoint-4000 (step 4000)" in checkpoints
    hub_model = of(records, "mfcc", "gender").model.to_dict()
    hub_model.update(name="facebook/hubert-base-ls960", kind="transformers", revision="abc",
                     settings={"model_type": "hubert", "requested_revision": None, "dtype": "float32"})
    hub_record = of(records, "mfcc", "gender").replace(model=type(views[0].model).from_dict(hub_model))
    detail = model_detail(build_table([hub_record]), "facebook/hubert-base-ls960")
    assert "[model card on the Hub](https://huggingface.co/facebook/hubert-base-ls960)" in detail
    assert "speat evaluate facebook/hubert-base-ls960 --revision abc" in detail
