"""`speat prune debias` on a tiny model with a planted bias (tests/planted_bias.py): the planted row goes, held-out
|d| falls with a paired interval that excludes the unpruned d, the shuffled-label control does not fall, the model
loads, the report names the comparison; bad input is one line before any work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from planted_bias import TEST, plant_bias, write_planted_test
from tiny_models import save_prunable_model

from speat_metric.adapters import load_encoder
from speat_metric.cli import main
from speat_metric.cosines import record_cosines
from speat_metric.pruning.attribution import Component, attach_gates, gated_effect_sizes, speaker_folds
from speat_metric.pruning.debias import Removal, component_parameters, quality_loss, removable
from speat_metric.results import load_records
from speat_metric.stimuli import load_custom_test, load_speat_test

TINY = """
training: {batch_size: 2, crop_seconds: 0.5, min_seconds: 0.3, num_workers: 0}
data: {held_out: {fraction: 0.2}}
resamples: 400
"""


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The planted-bias model saved as a transformers directory, its test (one clip per speaker: every target its
    own speaker), and training audio of 5 speakers in LibriSpeech's layout (the held-out audio is a whole speaker)."""
    root = tmp_path_factory.mktemp("debias")
    model = save_prunable_model("wav2vec2", root / "model", seed=0)
    encoder = load_encoder(str(model))
    test = write_planted_test(root / "stimuli", speakers=16, clips_per_speaker=1, seed=0)
    component, _ = plant_bias(encoder, test)
    encoder.model.save_pretrained(model)  # the feature extractor saved beside it stays
    (root / "planted.txt").write_text(f"{component.kind} {component.layer} {component.index}")
    rng = np.random.default_rng(0)
    for speaker in range(5):
        folder = root / "audio" / f"{speaker}" / "1"
        folder.mkdir(parents=True)
        for number in range(2):
            time = np.arange(8_000) / 16_000
            wave = 0.3 * np.sin(2 * np.pi * (150 + 30 * speaker) * time) + 0.05 * rng.standard_normal(len(time))
            soundfile.write(folder / f"{speaker}-1-{number}.wav", wave.astype(np.float32), 16_000)
    (root / "tiny.yaml").write_text(TINY)
    return root


def run_debias(root: Path, out: str, *options: str) -> int:
    return main(["prune", "debias", str(root / "model"), "--data", str(root / "audio"), "--out", str(root / out),
                 "--config", str(root / "tiny.yaml"), "--tests", str(root / "stimuli" / f"{TEST}.json"),
                 "--permutations", "20", "--no-progress", *options])


def test_the_plant_dominates_d_on_every_side_of_the_folds_the_debias_run_uses(planted):
    # closing the planted row lowers |d| on every selection and held-out side, so attribution can find it anywhere
    kind, layer, index = (planted / "planted.txt").read_text().split()
    encoder = load_encoder(str(planted / "model"))
    test = load_speat_test(load_custom_test(planted / "stimuli" / f"{TEST}.json"), progress=False)
    # as the run loads it (one clip per speaker: the folds split by matched pair), split as the run splits it
    sides = {f"{number}-{side}": getattr(fold, side)
             for number, fold in enumerate(speaker_folds(test, folds=2, seed=0))
             for side in ("selection", "held_out")}
    gates = attach_gates(encoder)
    try:
        with torch.no_grad():
            planted_d = gated_effect_sizes(encoder, gates, sides)
            gates.close([Component(kind, int(layer), int(index))])
            closed_d = gated_effect_sizes(encoder, gates, sides)
    finally:
        gates.remove()
    for side in sides:
        assert float(planted_d[side]) > 0.5 and abs(float(closed_d[side])) < float(planted_d[side]) - 0.3, side


@pytest.mark.slow  # two folds x one seed x (debias + 4 controls) x 2 steps with fine-tuning, and LEACE: ~1 min
def test_debias_removes_the_planted_row_and_beats_shuffled_labels_on_held_out_speakers(planted):
    code = run_debias(planted, "run", "--folds", "2", "--seeds", "1", "--step", "1", "--max-steps", "2",
                      "--fine-tune-steps", "2", "--kinds", "rows", "--budget", "1000")
    assert code == 0
    out = planted / "run"
    kind, layer, index = (planted / "planted.txt").read_text().split()
    for fold in (0, 1):
        records = load_records(out / f"fold-{fold}" / "seed-0" / "debias" / "results")
        last = max(records, key=lambda record: record.compression["step"])
        removed = {(item["kind"], item["layer"], item["index"]) for item in last.compression["removed"]}
        assert (kind, int(layer), int(index)) in removed
        first = min(records, key=lambda record: record.compression["step"])
        assert first.compression["removed_this_step"] == [{"kind": kind, "layer": int(layer), "index": int(index)}]
        paired = last.compression["paired_delta_d"]
        unpruned = load_records(out / f"fold-{fold}" / "unpruned" / "results")[0].speat.effect_size
        assert paired["unpruned_d"] == pytest.approx(unpruned)
        assert abs(last.speat.effect_size) < abs(unpruned)
        # the interval of d - d_unpruned lies on the side of a smaller |d|: it excludes the unpruned d
        assert (paired["ci_high"] < 0) if unpruned > 0 else (paired["ci_low"] > 0)
        assert last.compression["fold"] == fold and last.compression["method"] == "debias"
        # held-out: no target of the selection side appears in the evaluated stimuli of the other fold
        other = load_records(out / f"fold-{1 - fold}" / "unpruned" / "results")[0]
        targets, other_targets = ({*record_cosines(record).ids["X"], *record_cosines(record).ids["Y"]}
                                  for record in (last, other))
        assert targets and other_targets and not targets & other_targets
        shuffled = load_records(out / f"fold-{fold}" / "seed-0" / "control-shuffled-labels" / "results")
        shuffled_last = max(shuffled, key=lambda record: record.compression["step"])
        assert shuffled_last.compression["method"] == "debias-control:shuffled-labels"
        # the shuffled-label control does not fall: its held-out d stays inside the unpruned d's own 95% interval
        # (the sampling noise of d; a paired interval is far tighter, and any fine-tuning moves d a little), where
        # debias's d left it
        base = load_records(out / f"fold-{fold}" / "unpruned" / "results")[0].speat
        assert base.ci_low <= shuffled_last.speat.effect_size <= base.ci_high
        assert not base.ci_low <= last.speat.effect_size <= base.ci_high
        assert abs(shuffled_last.speat.effect_size) > abs(last.speat.effect_size)
    for fold in (0, 1):  # the attribution maps and the ablation check of each fold's first step
        attribution = (out / f"fold-{fold}" / "attribution.md").read_text()
        assert f"| 1 | {kind} | {layer} | {index} |" in attribution  # the planted row is ranked first
        assert "more than random removal does" in attribution
        assert (out / f"fold-{fold}" / "attribution.png").stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "fold 0: Removing the top 1 components" in report
    assert "shuffled-labels" in report and "held-out speakers" in report
    assert ("Debias beats shuffled-labels" in report) or ("it did not" in report)
    assert (out / "pareto.png").stat().st_size > 0
    final = load_encoder(str(out / "final"))
    widths = [layer.feed_forward.intermediate_dense.out_features for layer in final.model.encoder.layers]
    assert sum(widths) == 2 * 64 - 2
    assert main(["evaluate", str(out / "final"), "--tests", str(planted / "stimuli" / f"{TEST}.json"),
                 "--permutations", "20", "--no-progress", "--out", str(planted / "final-eval")]) == 0


@pytest.mark.parametrize(("options", "message"), [
    (["--budget", "-1"], r"--budget must be a number >= 0"),
    (["--folds", "1"], r"--folds must be at least 2"),
    (["--seeds", "0"], r"--seeds \(replicates per fold\) must be a positive"),
    (["--kinds", "layers"], r"--kinds layers: unknown layers"),
])
def test_bad_settings_are_one_line_before_any_work(planted, capsys, options, message):
    import re

    assert run_debias(planted, "bad", *options) != 0
    error = capsys.readouterr().err.strip()
    assert re.search(message, error) and len(error.splitlines()) == 1
    assert not (planted / "bad").exists()


def test_unknown_test_and_too_few_speakers_are_one_line_before_any_work(planted, capsys):
    assert main(["prune", "debias", str(planted / "model"), "--data", str(planted / "audio"), "--out",
                 str(planted / "unknown"), "--tests", "nonsense", "--no-progress"]) != 0
    error = capsys.readouterr().err.strip()
    assert "nonsense" in error and len(error.splitlines()) == 1
    assert run_debias(planted, "few", "--folds", "9") != 0  # 16 matched pairs: some side gets 1
    error = capsys.readouterr().err.strip()
    assert "fold" in error and "use fewer folds" in error and len(error.splitlines()) == 1
    assert not list((planted / "few").glob("fold-*"))


def test_quality_loss_is_the_teacher_loss_or_the_native_relative_increase():
    assert quality_loss(0.04, 0.0, "teacher") == 0.04
    assert quality_loss(3.0, 2.0, "native") == pytest.approx(0.5)


def test_removal_slices_the_current_positions_and_records_original_indices(planted):
    from speat_metric.training.models import load_trainable_encoder

    target = load_trainable_encoder(str(planted / "model"))
    before = sum(parameter.numel() for parameter in target.encoder.parameters())
    removal = Removal.of(target)
    first = removal.apply(target, [Component("row", 0, 3), Component("head", 1, 2)])
    # position 3 of layer 0 is now original row 4; position 2 of layer 1 is now original head 3
    second = removal.apply(target, [Component("row", 0, 3), Component("head", 1, 2)])
    assert first == [{"kind": "row", "layer": 0, "index": 3}, {"kind": "head", "layer": 1, "index": 2}]
    assert second == [{"kind": "row", "layer": 0, "index": 4}, {"kind": "head", "layer": 1, "index": 3}]
    after = sum(parameter.numel() for parameter in target.encoder.parameters())
    assert before - after == 2 * component_parameters(target, "row") + 2 * component_parameters(target, "head")
    layers = target.layers()
    assert [layer.ffn_dim for layer in layers] == [62, 64] and layers[1].kept_heads == [0, 1]
    # a layer keeps one head: removable skips what would empty it
    ranked = [Component("head", 1, 0), Component("head", 1, 1), Component("row", 1, 0)]
    assert removable(target, ranked, 2, ["head", "row"]) == [Component("head", 1, 0), Component("row", 1, 0)]
    assert torch.is_tensor(layers[0].intermediate.weight)
