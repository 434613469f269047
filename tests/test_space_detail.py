"""speat_metric.space.detail: a model's results, how each was made, and the command that reproduces it."""

from __future__ import annotations

import re
import shlex

import pytest
from test_space_fixtures import bundled, of, on_real_stimuli

from speat_metric.cli import main
from speat_metric.cosines import record_cosines
from speat_metric.diagnostics import record_concept_associations, record_leave_one_out
from speat_metric.formatting import CI_EXCLUDES_ZERO_MARK, CI_EXCLUDES_ZERO_NOTE
from speat_metric.report import reproduce_command
from speat_metric.results import load_records
from speat_metric.space import ranks
from speat_metric.space.detail import RESULT_COLUMNS, detail_curves, layer_sentences, model_detail
from speat_metric.space.rows import build_table, records_of


@pytest.fixture(scope="module")
def records():
    return bundled()


@pytest.fixture(scope="module")
def table():
    """Every bundled record: checkpoints of a pretraining run, per-layer models, pruning sweeps, students."""
    return build_table(bundled(compressed=True))


def results_table(text: str) -> list[list[str]]:
    """The cells of the detail's results table, header first."""
    lines = text.splitlines()
    # RESULT_COLUMNS, with "p (Holm)" after p when the model has several tests
    start = next(index for index, line in enumerate(lines) if line.startswith("| " + " | ".join(RESULT_COLUMNS[:5])))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return [rows[0], *rows[2:]]  # without the |---| line


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
    assert len(results_table(text)) == 1 + len(views)
    assert "not a Hub model, so no model card" in text and "Synthetic stimuli" in text
    assert "**melhubert** · 16.5M parameters · 4 layers" in text
    for version in ("speat", "numpy", "torch", "transformers"):
        assert f"{version} {views[0].environment[version]}" in text
    assert "10,000 random partitions" in text and "seed 0" in text
    assert text.count("```bash") == 2  # mean pooling and per-layer: one command each
    hub_model = of(records, "mfcc", "gender").model.to_dict()
    hub_model.update(name="facebook/hubert-base-ls960", kind="transformers", revision="abc",
                     settings={"model_type": "hubert", "requested_revision": None, "dtype": "float32"})
    hub_record = of(records, "mfcc", "gender").replace(model=type(views[0].model).from_dict(hub_model))
    detail = model_detail(build_table([hub_record]), "facebook/hubert-base-ls960")
    assert "[model card on the Hub](https://huggingface.co/facebook/hubert-base-ls960)" in detail
    assert "speat evaluate facebook/hubert-base-ls960 --revision abc" in detail


def test_the_results_table_is_compact_and_every_number_is_written_by_the_formatting_module(table):
    for run in ("models/pretraining-run", "random:melhubert-small", "runs/prune-heads", "mfcc"):
        text = model_detail(table, run)
        header, *rows = results_table(text)
        # each of these runs has a model with several tests, so Holm-adjusted p sits beside p
        assert header == ["result", "test", "d", "size", "p", "p (Holm)", "95% CI"]
        assert len(rows) == len(records_of(table, run)), run
        for result, test, d, size, p, holm, ci in rows:
            assert run not in result and result, (run, result)  # what tells the rows apart, not the model again
            assert test in table.tests
            assert re.fullmatch(r"[+-]\d\.\d\d", d), d
            assert re.fullmatch(rf"(negligible|small|medium|large)( {CI_EXCLUDES_ZERO_MARK})?", size), size
            assert re.fullmatch(r"<?\d(\.\d+)?(e-\d+)?", p), p
            assert re.fullmatch(r"<?\d(\.\d+)?(e-\d+)?", holm), holm
            assert re.fullmatch(r"\[[+-]\d\.\d\d, [+-]\d\.\d\d\]", ci), ci
        marked = any(CI_EXCLUDES_ZERO_MARK in size for _, _, _, size, _, _, _ in rows)
        assert (CI_EXCLUDES_ZERO_NOTE in text) == marked, run
    steps = [row[0] for row in results_table(model_detail(table, "models/pretraining-run"))[1:]]
    assert steps[:3] == ["step 0"] * 3 and "step 4000" in steps
    layers = {row[0] for row in results_table(model_detail(table, "random:melhubert-small"))[1:]}
    assert layers == {"mean over layers", "layer 0", "layer 1", "layer 2", "layer 3"}
    pruned = {row[0] for row in results_table(model_detail(table, "runs/prune-heads"))[1:]}
    assert len(pruned) == 3 and all(label.startswith("heads pruning, step ") for label in pruned)  # no 2nd step


def test_provenance_shared_by_the_checkpoints_is_written_once_and_each_block_is_closed(table):
    text = model_detail(table, "models/pretraining-run")
    checkpoints = {int(step) for step in records_of(table, "models/pretraining-run")["step"]}
    assert len(checkpoints) == 6
    for shared in ("**versions**", "**statistics**", "**pooling**", "**stimuli**", "**architecture**"):
        assert text.count(shared) == 1, shared
    assert text.count("**model**") == len(checkpoints)  # each checkpoint has its own weights
    assert text.count("<details>") == text.count("</details>") == len(checkpoints)
    assert "checkpoint-4000 (step 4000)" in text
    blocks = re.findall(r"<details>\n<summary>(.*?)</summary>\n\n(.*?)\n</details>", text, flags=re.S)
    assert len(blocks) == len(checkpoints)
    for summary, body in blocks:
        assert re.fullmatch(r"checkpoint-\d+ \(step \d+\) · mean over layers: gender, age, native", summary)
        assert "<details>" not in body and body.count("```bash") == 1 and "speat evaluate" in body
    opened = 0
    for tag in re.findall(r"</?details>", text):  # never nested, never left open
        opened += 1 if tag == "<details>" else -1
        assert opened in (0, 1)
    assert opened == 0


def test_a_models_details_name_its_layers_and_compression(table):
    text = model_detail(table, "random:melhubert-small")
    summaries = re.findall(r"<summary>(.*?)</summary>", text)
    assert summaries == ["mean over layers: gender, age, native", "layers 0, 1, 2, 3: gender, age, native"]
    assert text.count("**versions**") == 1
    pruned = model_detail(table, "runs/prune-heads")
    assert all(summary.startswith("checkpoint-") and "heads pruning" in summary
               for summary in re.findall(r"<summary>(.*?)</summary>", pruned))
    assert pruned.count("**compression**") == 3  # one sweep step each
    assert model_detail(table, None).startswith("Choose a model")


def test_the_detail_plot_of_a_checkpointed_run_is_d_over_training_steps(table):
    curves = detail_curves(table, "models/pretraining-run")
    assert curves.x_label == "training step" and not curves.categorical_x
    assert set(curves.points["x"]) == {0, 250, 500, 1000, 2000, 4000}
    assert set(curves.points["test"]) == {"gender", "age", "native"} and len(curves.points) == 18
    at_4000 = curves.points[(curves.points["x"] == 4000) & (curves.points["test"] == "gender")]
    assert float(at_4000["d"].iloc[0]) == pytest.approx(-1.17716, abs=1e-5)
    pruned = detail_curves(table, "runs/prune-heads")  # steps of a pruning sweep
    assert pruned.x_label == "checkpoint step" and set(pruned.points["x"]) == {3, 5, 7}


def test_the_detail_plot_of_a_per_layer_model_is_d_per_layer(table):
    curves = detail_curves(table, "random:melhubert-small")
    assert curves.x_label.startswith("layer") and set(curves.points["x"]) == {0, 1, 2, 3}
    frame = records_of(table, "random:melhubert-small")
    mean = frame[frame["layer"].isna()]
    assert curves.references[""] == pytest.approx(dict(zip(mean["test"], mean["d"])))  # dashed: mean over layers


def test_the_detail_plot_of_a_model_with_few_results_is_d_per_test(table, records):
    curves = detail_curves(table, "mfcc")
    assert curves.categorical_x and curves.x_label == "test"
    assert list(curves.points["x"].cat.categories) == ["gender", "age", "native"]
    expected = {record.test: record.speat.effect_size for record in records if record.model.name == "mfcc"}
    assert dict(zip(curves.points["test"], curves.points["d"])) == pytest.approx(expected)
    assert detail_curves(table, "no/such-model") is None


def test_the_detail_plot_uses_the_stimuli_asked_for_else_those_most_results_are_on(records):
    real = on_real_stimuli(of(records, "mfcc", "gender"))
    table = build_table([*records, real])
    assert set(detail_curves(table, "mfcc").points["d"]) != {real.speat.effect_size}  # 3 synthetic, 1 real
    on_real = detail_curves(table, "mfcc", "real")
    assert list(on_real.points["d"]) == [real.speat.effect_size] and not on_real.note
    only_synthetic = detail_curves(table, "stft", "real")
    assert len(only_synthetic.points) == 3 and "no results on real stimuli" in only_synthetic.note
    labels = [row[0] for row in results_table(model_detail(table, "mfcc"))[1:]]
    assert "demo (synthetic)" in labels and "download" in labels  # the stimuli now tell the results apart


def test_what_drives_d_gives_each_tests_concept_associations_and_leave_one_out(table):
    text = model_detail(table, "models/small-wav2vec2")
    section = text[text.index("### What drives d"):text.index("### How each was made")]
    rows = records_of(table, "models/small-wav2vec2")
    pooled = rows[rows["layer"].isna() & (rows["method"] == "none")]
    assert len(pooled) == 3
    for index in pooled["record"]:
        record = table.record(int(index))
        associations = record_concept_associations(record, n_resamples=ranks.N_RESAMPLES, seed=ranks.SEED)
        assert associations.sentence(record.groups) in section
        assert record_leave_one_out(record).sentence() in section
        # the table's mean cosines, checked against the cosine matrix's blocks averaged by a plain loop
        cosines = record_cosines(record)
        n_x, n_a = cosines.n_x, cosines.n_a
        blocks = {"XA": [], "XB": [], "YA": [], "YB": []}
        for row, values in enumerate(cosines.values):
            for column, value in enumerate(values):
                blocks[("X" if row < n_x else "Y") + ("A" if column < n_a else "B")].append(value)
        line = next(line for line in section.splitlines() if line.startswith(f"| {record.test} |"))
        assert line.split(" | ")[2:6] == [f"{sum(values) / len(values):.3f}" for values in blocks.values()]
    assert "| test | result | cos X·A | cos X·B | cos Y·A | cos Y·B | g_X (95% CI) | g_Y (95% CI) |" in section


def test_a_one_speaker_sign_flip_is_flagged_and_a_record_without_cosines_says_why(records):
    record = of(records, "mfcc", "gender")
    scores = record.association_scores
    # one X speaker far on the other side flips d's sign when left out: d > 0 only because of them
    flipped = {**scores, "X": [{**entry, "s": -abs(entry["s"]) - 1} for entry in scores["X"]],
               "Y": [{**entry, "s": abs(entry["s"])} for entry in scores["Y"]]}
    flipped["X"][0] = {**flipped["X"][0], "s": 1e3}
    found = record_leave_one_out(record.replace(association_scores=flipped))
    assert found.sign_flips == (flipped["X"][0]["id"],)
    table = build_table([record.replace(association_scores=flipped), record.replace(cosines=None, test="age")])
    text = model_detail(table, "mfcc")
    assert "⚠ One speaker decides the direction of d" in text
    assert "**age** (" in text and "keeps no cosine matrix" in text


def test_under_a_per_layer_plot_one_sentence_per_test_names_its_extreme_layers(table):
    sentences = layer_sentences(table, "random:melhubert-small")
    rows = records_of(table, "random:melhubert-small")
    layered = rows[rows["layer"].notna()]
    assert len(sentences) == layered["test"].nunique() == 3
    for sentence, (test, of_test) in zip(sentences, layered.groupby("test", sort=False)):
        smallest = of_test.loc[of_test["d"].abs().idxmin()]
        largest = of_test.loc[of_test["d"].abs().idxmax()]
        assert sentence.startswith(f"On {test}, |d| is smallest at layer {int(smallest['layer'])} ")
        assert f"largest at layer {int(largest['layer'])} " in sentence
    assert layer_sentences(table, "mfcc") == []
