"""speat_metric.hub.card and .card_merge: card content from records, and merging it into cards safely."""

from __future__ import annotations

import dataclasses
import difflib
import logging

import pytest
import yaml
from hub_testing import FOREIGN_CARD, added_lines
from huggingface_hub import ModelCard, parse_eval_result_entries
from tiny_models import save_tiny_model

from speat_metric.evaluation import EvaluationSettings, evaluate_models
from speat_metric.formatting import (
    CI_EXCLUDES_ZERO_MARK,
    CI_EXCLUDES_ZERO_NOTE,
    excludes_zero,
    format_ci,
    format_d,
    format_p_statement,
    format_size,
)
from speat_metric.hub.benchmark import Benchmark
from speat_metric.hub.card import BEGIN_MARKER, END_MARKER, CardError, check_card_records, render_card
from speat_metric.hub.card_merge import card_provenance, merge_card, set_yaml_keys
from speat_metric.report import HOLM_NOTE, format_p_value, holm_p_texts, reproduce_command

REPO = "owner/tiny"
REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def card_folder(tmp_path_factory):
    """A tiny model and the embedding cache its records share (per-layer records then need no forward pass)."""
    folder = tmp_path_factory.mktemp("card")
    save_tiny_model("wav2vec2", folder / "tiny")
    return folder


@pytest.fixture(scope="module")
def records(card_folder):
    """Real records of a tiny model (gender and age, demo stimuli), as if evaluated from the Hub at REVISION."""
    settings = EvaluationSettings(tests=("gender", "age"), num_permutations=300, progress=False,
                                  cache_dir=card_folder / "cache")
    made = evaluate_models([str(card_folder / "tiny")], settings)
    return [record.replace(model=dataclasses.replace(record.model, name=REPO, revision=REVISION)) for record in made]


def renumbered(records, shift):
    return [record.replace(speat=record.speat.replace(effect_size=record.speat.effect_size + shift,
                                                      p_value=0.25)) for record in records]


def our_results(text):
    data = yaml.safe_load(text.split("---")[1])
    return [result for result in data["model-index"][0]["results"]
            if any(metric["type"].startswith("speat_") for metric in result["metrics"])]


def test_reannotating_replaces_only_our_entries_and_keeps_every_other_byte(records):
    first = merge_card(FOREIGN_CARD, render_card(records, repo_id=REPO, allow_synthetic=True))
    ours_first = added_lines(FOREIGN_CARD, first)  # the owner's lines all stay, in order
    second = merge_card(first, render_card(renumbered(records, 0.5), repo_id=REPO, allow_synthetic=True))
    first_lines, second_lines = first.splitlines(keepends=True), second.splitlines(keepends=True)
    for tag, i1, i2, _, _ in difflib.SequenceMatcher(a=first_lines, b=second_lines, autojunk=False).get_opcodes():
        if tag != "equal":
            assert set(range(i1, i2)) <= ours_first, f"a line speat did not write changed: {first_lines[i1:i2]!r}"
    assert second != first
    added_lines(FOREIGN_CARD, second)
    original = yaml.safe_load(FOREIGN_CARD.split("---")[1])
    merged = yaml.safe_load(second.split("---")[1])
    assert list(merged) == list(original)  # same keys, same order
    assert {k: v for k, v in merged.items() if k != "model-index"} == {k: v for k, v in original.items()
                                                                         if k != "model-index"}
    assert merged["model-index"][0]["results"][0] == original["model-index"][0]["results"][0]
    results = our_results(second)
    assert [result["dataset"]["config"] for result in results] == ["gender", "age"]  # once each, not duplicated
    d_values = {result["dataset"]["config"]: next(m["value"] for m in result["metrics"] if m["type"] == "speat_d")
                for result in results}
    assert d_values == {record.test: pytest.approx(record.speat.effect_size + 0.5, abs=1e-4) for record in records}
    assert second.count(BEGIN_MARKER) == second.count(END_MARKER) == 1
    assert merge_card(second, render_card(renumbered(records, 0.5), repo_id=REPO, allow_synthetic=True)) == second
    library = ModelCard(second).data.eval_results
    assert {result.metric_type for result in library} >= {"wer", "speat_d", "speat_p_value", "speat_d_ci_low"}


def test_card_shows_the_table_labels_revision_and_reproduction(records):
    content = render_card(records, repo_id=REPO, allow_synthetic=True)
    section = content.section
    assert "| p | p (Holm) | 95% CI |" in section and HOLM_NOTE.split(":")[0] in section  # one model, two tests
    for record, holm in zip(records, holm_p_texts(records)):
        row = next(line for line in section.splitlines() if line.startswith(f"| {record.test} |"))
        size = format_size(record.speat.effect_size_label, record.speat.ci_low, record.speat.ci_high)
        assert f"| {format_d(record.speat.effect_size)} | {size} | {format_p_value(record.speat)} | {holm} |" in row
        assert f"| {format_ci(record.speat.ci_low, record.speat.ci_high)} | 12/12 |" in row
    marked = any(excludes_zero(record.speat.ci_low, record.speat.ci_high) for record in records)
    assert (CI_EXCLUDES_ZERO_MARK in section) == marked and (CI_EXCLUDES_ZERO_NOTE in section) == marked
    assert "WARNING: SYNTHETIC STIMULI" in section and "NOT a bias measurement" in section
    assert "synthetic-stimuli" in section and "profile hf" in section and REVISION in section
    command = reproduce_command(records, REPO)
    assert command == (f"speat evaluate {REPO} --revision {REVISION} --stimuli demo --tests gender,age "
                       "--permutations 300 --seed 0")
    assert command in section
    assert card_provenance(merge_card(None, content)) == {"revision": REVISION, "speat": records[0].speat.speat_version}
    assert content.eval_file is None  # no benchmark: no .eval_results
    attached = render_card(records, repo_id=REPO, allow_synthetic=True,
                           benchmark=Benchmark("lab/speat-benchmark", "b" * 40, ("gender", "native"), "https://x"))
    entries = parse_eval_result_entries(yaml.safe_load(attached.eval_file))
    assert [(entry.dataset_id, entry.task_id, entry.dataset_revision) for entry in entries] == [
        ("lab/speat-benchmark", "gender", "b" * 40)]  # age is no task of this benchmark
    assert {result.dataset_type for result in attached.eval_results if result.dataset_config == "gender"} == {
        "lab/speat-benchmark"}
    assert {result.dataset_type for result in attached.eval_results if result.dataset_config == "age"} == {"age"}
    gender = next(record for record in records if record.test == "gender")
    assert entries[0].value == pytest.approx(gender.speat.effect_size, abs=1e-4)
    assert format_p_statement(gender.speat.p_value, exact=False, num_permutations=300) in entries[0].notes
    assert f"95% CI {format_ci(gender.speat.ci_low, gender.speat.ci_high)};" in entries[0].notes
    assert "300 random partitions" in entries[0].notes and REVISION in entries[0].notes
    assert f"audio fingerprint {gender.stimulus_fingerprint[:12]}" in entries[0].notes


def test_a_size_whose_interval_excludes_zero_is_marked_and_the_mark_explained(records):
    excluding = records[0].replace(speat=records[0].speat.replace(effect_size=-0.8512, ci_low=-1.3, ci_high=-0.004))
    straddling = records[1].replace(speat=records[1].speat.replace(effect_size=0.0049, ci_low=-0.5, ci_high=0.5))
    section = render_card([excluding, straddling], repo_id=REPO, allow_synthetic=True).section
    rows = {line.split(" | ")[0][2:]: line for line in section.splitlines() if line.startswith("| ")}
    assert "| -0.85 | large ◆ | " in rows[excluding.test]
    assert "| [-1.30, +0.00] |" in rows[excluding.test]  # the mark comes from the unrounded interval
    assert "| +0.00 | negligible | " in rows[straddling.test] and "| [-0.50, +0.50] |" in rows[straddling.test]
    assert f"- {CI_EXCLUDES_ZERO_NOTE}." in section.splitlines()
    unmarked = render_card([straddling], repo_id=REPO, allow_synthetic=True).section
    assert CI_EXCLUDES_ZERO_MARK not in unmarked and CI_EXCLUDES_ZERO_NOTE not in unmarked


def test_synthetic_and_random_results_are_refused_unless_allowed(records):
    with pytest.raises(CardError, match="SYNTHETIC demo stimuli .*--allow-synthetic"):
        render_card(records, repo_id=REPO)
    random_init = [record.replace(labels=("random-init",)) for record in records]
    with pytest.raises(CardError, match="RANDOMLY INITIALISED"):
        check_card_records(random_init)
    assert "WARNING: RANDOMLY INITIALISED MODEL" in render_card(random_init, allow_synthetic=True).section


def test_records_must_be_one_model_one_revision_one_per_test(records):
    other = records[0].replace(model=dataclasses.replace(records[0].model, revision="f" * 40))
    with pytest.raises(CardError, match="2 models or revisions"):
        check_card_records([*records, other], allow_synthetic=True)
    layer = records[0].replace(pooling={**records[0].pooling, "layer_pooling": "layer", "layer": 1})
    with pytest.raises(CardError, match="test 'gender' has 2 records"):
        check_card_records([*records, layer], allow_synthetic=True)
    with pytest.raises(CardError, match="no evaluation records"):
        check_card_records([])


def test_a_card_without_yaml_gets_one_and_keeps_its_body(records):
    body = "# Model\r\n\r\nWindows line endings.\r\n"
    merged = merge_card(body, render_card(records, repo_id=REPO, allow_synthetic=True))
    assert merged.startswith("---\r\nmodel-index:\r\n") and "\n" not in merged.replace("\r\n", "")
    assert merged.split("\r\n---\r\n", 1)[1].startswith(body)
    assert len(our_results(merged.replace("\r\n", "\n"))) == 2
    assert merge_card(None, render_card(records, repo_id=REPO, allow_synthetic=True)).startswith("---\nmodel-index:")


@pytest.mark.parametrize("card,message", [
    ("---\nlicense: [mit\n---\nBody\n", "invalid YAML metadata"),
    ("---\n- a list\n---\nBody\n", "not a mapping"),
    ("---\nmodel-index:\n- results: []\n---\nBody\n", "metadata is not valid"),
    (f"Body\n{BEGIN_MARKER}\nhalf a section\n", "broken speat section .*begin marker at line 2; end marker at "
                                                  "lines none"),
    (f"{BEGIN_MARKER}\n{END_MARKER}\n{BEGIN_MARKER}\n{END_MARKER}\n", "broken speat section"),
    (f"{END_MARKER}\n{BEGIN_MARKER}\n", "broken speat section"),
])
def test_cards_that_cannot_be_merged_safely_are_errors(records, card, message):
    with pytest.raises(CardError, match=message):
        merge_card(card, render_card(records, repo_id=REPO, allow_synthetic=True))


def test_flow_style_model_index_is_rewritten_through_the_card_api(records, caplog):
    card = "---\nlicense: mit\nmodel-index: [{name: m, results: [{task: {type: asr}, dataset: {type: d, name: D}, " \
           "metrics: [{type: wer, value: 1.0}]}]}]\n---\nBody\n"
    with caplog.at_level(logging.WARNING):
        merged = merge_card(card, render_card(records, repo_id=REPO, allow_synthetic=True))
    assert "could not be edited in place" in caplog.text
    data = yaml.safe_load(merged.split("---")[1])
    assert list(data) == ["license", "model-index"] and data["model-index"][0]["results"][0]["metrics"][0] == {
        "type": "wer", "value": 1.0}
    assert len(our_results(merged)) == 2 and merged.endswith(f"{END_MARKER}\n")


def test_set_yaml_keys_replaces_and_adds_top_level_keys_only():
    card = "---\nlicense: mit  # theirs\nconfigs:\n- old\npretty_name: x\n---\nBody\n"
    updated = set_yaml_keys(card, {"configs": [{"config_name": "default"}], "dataset_info": {"a": 1}})
    assert updated == ("---\nlicense: mit  # theirs\nconfigs:\n- config_name: default\npretty_name: x\n"
                       "dataset_info:\n  a: 1\n---\nBody\n")
    assert set_yaml_keys(updated, {"configs": [{"config_name": "default"}], "dataset_info": {"a": 1}}) == updated
    assert set_yaml_keys("Body\n", {"a": 1}) == "---\na: 1\n---\nBody\n"
    with pytest.raises(CardError, match="invalid YAML"):
        set_yaml_keys("---\na: [\n---\n", {"a": 1})


@pytest.mark.parametrize(("name", "card"), [
    ("byte-order mark", "\ufeff---\nlicense: apache-2.0\ntags:\n- audio\n---\n# Model\n"),
    ("empty header", "---\n---\n# Model\n"),
    ("empty header, CRLF", "---\r\n---\r\n# Model\r\n"),
    ("header of comments only", "---\n# the owner's note\n---\n# Model\n"),
    ("markers quoted in a fenced block", f"---\nlicense: mit\n---\n# Model\n\n```markdown\n{BEGIN_MARKER}\n```\n"),
])
def test_cards_the_hub_reads_keep_their_metadata_and_get_one_header(records, name, card):
    merged = merge_card(card, render_card(records, repo_id=REPO, allow_synthetic=True))
    body = merged.removeprefix("\ufeff")
    assert merged.startswith("\ufeff") == card.startswith("\ufeff")
    assert body.replace("\r\n", "\n").count("\n---\n") == 1 and body.startswith("---")  # one header, closed once
    metadata = ModelCard(body).data.to_dict()
    original = ModelCard(card.removeprefix("\ufeff")).data.to_dict() if "license" in card else {}
    assert {key: metadata[key] for key in original if key != "model-index"} == {
        key: value for key, value in original.items() if key != "model-index"}  # the owner's license and tags
    assert metadata["model-index"][0]["results"][0]["task"]["type"] == "social-bias"
    assert merge_card(merged, render_card(records, repo_id=REPO, allow_synthetic=True)) == merged


def test_results_left_empty_are_filled_in_place_and_an_unclosed_header_is_refused(records, caplog):
    card = "---\nlicense: mit  # kept\nmodel-index:\n- name: tiny\n  results: []\n---\n# Model\n"
    with caplog.at_level(logging.WARNING):
        merged = merge_card(card, render_card(records, repo_id=REPO, allow_synthetic=True))
    assert "rewriting the YAML header" not in caplog.text and "license: mit  # kept" in merged  # no lossy rewrite
    assert "  results:\n  - task:" in merged and "results: \n" not in merged and "\n\n---" not in merged
    with pytest.raises(CardError, match="opens a YAML header .* that is never closed"):
        merge_card("---\nlicense: mit\n# Model\n", render_card(records, repo_id=REPO, allow_synthetic=True))


BASE_REPO, BASE_REVISION = "org/base-model", "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture(scope="module")
def fine_tune_and_base(card_folder, records):
    """Records of two tiny models on the same stimuli (gender and age): a 'fine-tune' (`records`, REPO) and its
    'base' (another random model, BASE_REPO)."""
    settings = EvaluationSettings(tests=("gender", "age"), num_permutations=300, progress=False,
                                  cache_dir=card_folder / "cache")
    base = evaluate_models([str(save_tiny_model("wav2vec2", card_folder / "base", seed=1))], settings)
    return records, [record.replace(model=dataclasses.replace(record.model, name=BASE_REPO, revision=BASE_REVISION))
                     for record in base]


def test_a_fine_tune_card_states_each_tests_delta_d_against_its_base_and_keeps_its_metadata_its_own(
        fine_tune_and_base):
    from speat_metric.comparison import compare_records
    from speat_metric.hub.card import BaseResults

    tuned, base = fine_tune_and_base
    content = render_card(tuned, repo_id=REPO, allow_synthetic=True,
                          base=BaseResults(BASE_REPO, BASE_REVISION, tuple(base)))
    section = content.section
    assert "### Against its base model" in section and f"commit `{BASE_REVISION}`" in section
    assert content.provenance["base"] == f"{BASE_REPO}@{BASE_REVISION}"
    for record in tuned:
        [base_record] = [other for other in base if other.test == record.test]
        expected = compare_records(record, base_record, seed=record.speat.seed)  # computed apart from the card
        [line] = [line for line in section.splitlines() if line.startswith(f"- On {record.test},")]
        named = f"its base {BASE_REPO} (commit {BASE_REVISION[:7]})"
        more = "this model" if abs(record.speat.effect_size) > abs(base_record.speat.effect_size) else named
        assert line == (f"- On {record.test}, this model has d = {record.speat.effect_size:+.2f} and {named} d = "
                        f"{base_record.speat.effect_size:+.2f}: Δd = "
                        f"{record.speat.effect_size - base_record.speat.effect_size:+.2f} (95% CI "
                        f"[{expected.ci_low:+.2f}, {expected.ci_high:+.2f}]); " + (
                            f"{more} is distinguishably more biased on this test." if expected.distinguishable
                            else "the stimuli cannot tell the two apart."))
    assert [comparison.test for comparison in content.comparisons] == ["gender", "age"]
    # the base's d is in the section's sentences only, never in the card's evaluation results
    d_values = [result.metric_value for result in content.eval_results if result.metric_type == "speat_d"]
    assert d_values == [round(record.speat.effect_size, 4) for record in tuned]
    plain = render_card(tuned, repo_id=REPO, allow_synthetic=True)
    assert plain.eval_results == content.eval_results and "base" not in plain.provenance


def test_a_base_that_could_not_be_evaluated_is_one_line_and_a_base_missing_a_test_is_said(fine_tune_and_base):
    from speat_metric.hub.card import BaseResults

    tuned, base = fine_tune_and_base
    failed = render_card(tuned, repo_id=REPO, allow_synthetic=True,
                         base=BaseResults(BASE_REPO, problem="the Hub has no model 'org/base-model'."))
    [line] = [line for line in failed.section.splitlines() if line.startswith("This card names")]
    assert line == (f"This card names `{BASE_REPO}` as its base model (`base_model`), which could not be evaluated: "
                    "the Hub has no model 'org/base-model'.")
    assert failed.comparisons == () and failed.provenance["base"] == BASE_REPO
    partial = render_card(tuned, repo_id=REPO, allow_synthetic=True,
                          base=BaseResults(BASE_REPO, BASE_REVISION, tuple(r for r in base if r.test == "age")))
    assert "- On gender, its base org/base-model (commit fedcba9) has no result" in partial.section
    assert [comparison.test for comparison in partial.comparisons] == ["age"]


@pytest.fixture(scope="module")
def per_layer_records(card_folder, records):
    """Per-layer records of the `records` model (same cache: no second forward pass), at REVISION."""
    from speat_metric.pooling import LayerPooling

    settings = EvaluationSettings(tests=("gender", "age"), num_permutations=300, progress=False,
                                  cache_dir=card_folder / "cache", layer_pooling=LayerPooling("per-layer"))
    made = evaluate_models([str(card_folder / "tiny")], settings)
    return [record.replace(model=dataclasses.replace(record.model, name=REPO, revision=REVISION)) for record in made]


def test_per_layer_records_draw_a_deterministic_figure_that_the_section_shows(records, per_layer_records):
    from speat_metric.diagnostics import layer_profile, layer_sentence
    from speat_metric.hub.card import FIGURE_PATH

    content = render_card([*records, *per_layer_records], repo_id=REPO, allow_synthetic=True)
    assert content.figure.startswith(b"\x89PNG\r\n\x1a\n") and len(content.figure) < 100_000
    assert f"![SpEAT d per layer, one line per test, with 95% CIs]({FIGURE_PATH})" in content.section
    for test in ("gender", "age"):
        points = layer_profile([record for record in per_layer_records if record.test == test])
        assert len(points) >= 3 and f"- {layer_sentence(test, points)}" in content.section
    # the table and model-index keep one result per test (the mean of all layers), not one per layer
    assert render_card(records, repo_id=REPO, allow_synthetic=True).eval_results == content.eval_results
    assert "--pooling per-layer" in content.section.split("```bash\n")[1]
    again = render_card([*per_layer_records, *records], repo_id=REPO, allow_synthetic=True)
    assert again.figure == content.figure  # same records, same bytes: nothing to commit again
    moved = render_card([*records, *renumbered(per_layer_records, 0.3)], repo_id=REPO, allow_synthetic=True)
    assert moved.figure != content.figure
    assert render_card(records, repo_id=REPO, allow_synthetic=True).figure is None


def test_per_layer_records_alone_are_refused_unless_one_layer_was_chosen(per_layer_records):
    with pytest.raises(CardError, match=r"test 'gender' has \d+ per-layer records and no result of one layer view"):
        render_card(per_layer_records, repo_id=REPO, allow_synthetic=True)
    one_layer = [record for record in per_layer_records if record.pooling["layer"] == 2]
    chosen = render_card(one_layer, repo_id=REPO, allow_synthetic=True)
    assert chosen.figure is None and "| gender | female vs male | layer 2 |" in chosen.section
