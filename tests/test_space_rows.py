"""speat_metric.space.rows and columns: records -> tidy rows -> the leaderboard, its filters and ranking."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from test_space_fixtures import (
    SMALL,
    bundled,
    distilled_students,
    of,
    on_real_stimuli,
    pruning_sweep,
    shifted,
    with_model,
)

from speat_metric.report import holm_p_texts
from speat_metric.results import effect_size_label
from speat_metric.space import columns as C
from speat_metric.space.rows import (
    COMPUTED_MEAN,
    Compression,
    LeaderboardQuery,
    audio_summary,
    build_table,
    card_url,
    mixed_methods,
    per_layer_only,
    query_leaderboard,
    run_name,
    visible_columns,
)
from speat_metric.stimuli.fingerprints import stimulus_fingerprint


@pytest.fixture(scope="module")
def records():
    return bundled()


@pytest.fixture(scope="module")
def table(records):
    return build_table(records + pruning_sweep(records) + distilled_students(records), origin="test")


D_FORMAT = re.compile(r"^[+-]\d\.\d\d$")
P_FORMAT = re.compile(r"^(<?\d(\.\d+)?(e-\d+)?|<?0\.0*[1-9]\d?)$")


def _identical_groups(records) -> int:
    """How many leaderboard rows the records make, counted from the records alone: one per weights (or name),
    layer view, compression-free identity and the d of every test, so exact duplicates count once."""
    variants = {}
    for record in records:
        weights = record.model.weights_sha256 or record.model.name
        variant = (record.model_label, record.pooling.get("layer"), str(record.compression))
        variants.setdefault(variant, {"weights": weights, "layer": record.pooling.get("layer"), "d": {}})
        variants[variant]["d"][record.test] = round(record.speat.effect_size, 9)
    return len({(v["weights"], v["layer"], tuple(sorted(v["d"].items()))) for v in variants.values()})


def test_one_row_per_variant_with_each_tests_d_p_and_interval_as_the_formatting_module_writes_them(records, table):
    board = query_leaderboard(table, LeaderboardQuery(stimuli="synthetic", view=C.ALL_VIEWS))
    assert len(board) == _identical_groups(table.records)
    mfcc = board[board[C.MODEL] == "mfcc"].iloc[0]
    for test in ("gender", "age", "native"):
        result = of(records, "mfcc", test).speat
        assert D_FORMAT.match(mfcc[f"{test} d"]) and float(mfcc[f"{test} d"]) == pytest.approx(
            result.effect_size, abs=0.005)
        assert mfcc[f"{test} size"].split()[0] == effect_size_label(result.effect_size)
        assert mfcc[f"{test} size"].endswith("◆") == (result.ci_low > 0 or result.ci_high < 0)
        assert P_FORMAT.match(mfcc[f"{test} p"]), mfcc[f"{test} p"]
        assert mfcc[f"{test} CI"] == f"[{result.ci_low:+.2f}, {result.ci_high:+.2f}]"
        assert mfcc[f"_raw:{test}:d"] == result.effect_size
    expected_mean = sum(abs(of(records, "mfcc", t).speat.effect_size) for t in ("gender", "age", "native")) / 3
    assert mfcc["_raw:mean_abs_d"] == pytest.approx(expected_mean)


def test_exact_duplicates_are_one_row_that_names_the_others():
    table = build_table(bundled(compressed=True))  # with the step-0 records of each pruning sweep
    board = query_leaderboard(table, LeaderboardQuery(stimuli="synthetic"))
    small = board[board["_label"] == SMALL]
    assert len(small) == 1 and small["_detail"].iloc[0] == ""
    assert all(f"{method} pruning, step 0" in small["_aliases"].iloc[0] for method in ("heads", "rows", "weights"))
    tiny = board[board["_label"] == "models/tiny-wav2vec2"]
    assert "pretraining-run @ step 0" in tiny["_aliases"].iloc[0]
    assert "pretraining-run @ step 0" not in set(board["_label"])
    for view in (C.MEAN_VIEW, C.ALL_VIEWS):
        shown = query_leaderboard(table, LeaderboardQuery(stimuli="synthetic", view=view))
        looks = list(zip(shown["_label"], shown["_detail"]))
        assert len(looks) == len(set(looks)), f"two rows look the same in {view}"


def _per_layer_only(records, name: str, *, drop_layer: int | None = None):
    """The small wav2vec2's per-layer records as another model's, without its mean-over-layers records."""
    made = []
    for record in records:
        if record.model.name == SMALL and record.pooling.get("layer") is not None and record.compression is None:
            if record.pooling["layer"] != drop_layer:
                made.append(record.replace(model=with_model(record, name)))
    return made


def test_a_model_evaluated_per_layer_only_shows_in_the_default_view(records):
    complete = _per_layer_only(records, "lab/per-layer")
    table = build_table(records + complete)
    board = query_leaderboard(table, LeaderboardQuery(stimuli="synthetic"))
    row = board[board["_label"] == "lab/per-layer"]
    assert len(row) == 1 and row["_computed"].iloc[0] and COMPUTED_MEAN in row["_labels"].iloc[0]
    for test in ("gender", "age", "native"):
        layers = [record.speat.effect_size for record in complete if record.test == test]
        assert row[f"_raw:{test}:d"].iloc[0] == pytest.approx(sum(layers) / len(layers))
        assert row[f"{test} p"].iloc[0] == "n/a" and row[f"{test} CI"].iloc[0] == "n/a"
        assert pd.isna(row[f"_raw:{test}:p"].iloc[0])
    every_layer = query_leaderboard(table, LeaderboardQuery(stimuli="synthetic", view=C.ALL_VIEWS))
    mine = every_layer[every_layer["_label"] == "lab/per-layer"]
    assert sorted(mine["_detail"]) == [f"layer {layer}" for layer in range(5)]

    partial = build_table(records + _per_layer_only(records, "lab/some-layers", drop_layer=2))
    board = query_leaderboard(partial, LeaderboardQuery(stimuli="synthetic"))
    mine = board[board["_label"] == "lab/some-layers"]
    assert sorted(mine["_detail"]) == ["layer 0", "layer 1", "layer 3", "layer 4"]
    assert "lab/some-layers" in per_layer_only(partial, board)
    assert per_layer_only(table, query_leaderboard(table, LeaderboardQuery(stimuli="synthetic"))) == ""


def test_every_ranking_reads_back_from_its_text_and_ranks_by_its_column(table):
    for text in C.sort_choices(table.tests):
        assert C.SortOrder.parse(text, table.tests).text() == text
    assert C.SortOrder.parse("nonsense", table.tests) == C.SortOrder()
    most = query_leaderboard(table, LeaderboardQuery(stimuli="synthetic", sort=C.SortOrder("gender d", True)))
    magnitudes = [abs(value) for value in most["_raw:gender:d"]]
    assert magnitudes == sorted(magnitudes, reverse=True)
    by_parameters = query_leaderboard(table, LeaderboardQuery(stimuli="synthetic", sort=C.SortOrder("params")))
    assert by_parameters["_raw:params"].tolist() == sorted(by_parameters["_raw:params"])
    by_name = query_leaderboard(table, LeaderboardQuery(stimuli="synthetic", sort=C.SortOrder(C.MODEL, True)))
    assert [name.lower() for name in by_name[C.MODEL]] == sorted((n.lower() for n in by_name[C.MODEL]), reverse=True)


def test_a_typed_row_count_is_used_and_anything_else_is_said_and_replaced():
    assert C.row_limit("25") == (25, "")
    count, problem = C.row_limit("abc")
    assert count == C.DEFAULT_ROW_LIMIT and "'abc'" in problem and problem.startswith("Rows:")
    assert C.row_limit("-3")[1] and C.row_limit("2.5")[1] and C.row_limit(None)[1]


def test_real_and_synthetic_results_are_never_ranked_together(records):
    real = [on_real_stimuli(of(records, "mfcc", test), "facebook/hubert-base-ls960") for test in ("gender", "age")]
    table = build_table(records + real)
    real_board = query_leaderboard(table, LeaderboardQuery(stimuli="real"))
    synthetic_board = query_leaderboard(table, LeaderboardQuery(stimuli="synthetic"))
    assert list(real_board[C.MODEL]) == ["facebook/hubert-base-ls960"]
    assert "facebook/hubert-base-ls960" not in set(synthetic_board[C.MODEL])
    assert table.count("real") == 2 and table.count("synthetic") == len(records)


def test_filters_narrow_the_rows(table):
    everything = query_leaderboard(table, LeaderboardQuery(stimuli="synthetic"))
    features = query_leaderboard(table, LeaderboardQuery(stimuli="synthetic", families=("classical feature",)))
    assert set(features[C.MODEL]) == {"stft", "spectrogram", "mel_spectrogram", "mfcc"} < set(everything[C.MODEL])
    searched = query_leaderboard(table, LeaderboardQuery(stimuli="synthetic", search=" HUBERT ; mfcc"))
    assert set(searched[C.MODEL]) == {"random:melhubert-small", "models/tiny-hubert", "mfcc"}
    pruned = query_leaderboard(table, LeaderboardQuery(stimuli="synthetic", methods=("rows",)))
    assert all("rows pruning" in label for label in pruned["compression"])
    assert len(pruned) == len({(r.model_label, r.compression["step"]) for r in table.records
                               if r.compression and r.compression["method"] == "rows"
                               and r.compression["step"] > 0})  # step 0 is the unpruned model: one row with it
    features_only = LeaderboardQuery(stimuli="synthetic", sizes=("classical feature (no parameters)",))
    small = query_leaderboard(table, features_only)
    assert set(small["family"]) == {"classical feature"}
    layer_one = query_leaderboard(table, LeaderboardQuery(stimuli="synthetic", view="layer 1"))
    assert set(layer_one["layers"]) == {"layer 1"} and set(layer_one["_detail"]) == {"layer 1"}
    assert len(layer_one) == len({r.model_label for r in table.records if r.pooling.get("layer") == 1})


def test_ranking_puts_the_least_biased_first_and_missing_values_last(table):
    board = query_leaderboard(table, LeaderboardQuery(stimuli="synthetic"))
    values = board["_raw:mean_abs_d"].dropna().tolist()
    assert values == sorted(values) and board[C.MEAN_ABS_D].tolist() == [f"{value:.2f}" for value in values]


def test_a_re_run_replaces_the_older_record(records):
    old = of(records, "mfcc", "gender").replace(created="2020-01-01T00:00:00+00:00")
    new = shifted(old, 0.5, created="2030-01-01T00:00:00+00:00")
    table = build_table([old, new])
    assert table.superseded == 1 and len(table.frame) == 1
    assert table.frame["d"].iloc[0] == pytest.approx(new.speat.effect_size)


def test_columns_shown_by_default_and_always(table):
    default = visible_columns(table, None)
    assert "revision" not in default and "gender p" in default and C.MODEL in default
    always = {C.MODEL, C.MEAN_ABS_D, "gender d", "age d", "native d"}
    assert always | {"revision"} == set(visible_columns(table, ["revision"]))


def test_compression_fields_as_the_space_reads_them(records):
    base = of(records, SMALL, "gender")
    given = Compression.of(base.replace(compression={"method": "heads", "step": 2, "parameters_removed": 1500}))
    assert (given.method, given.step, given.parameters_removed) == ("heads", 2, 1500)
    derived = Compression.of(base.replace(compression={"method": "rows", "base_parameters": 10_000,
                                                       "parameters": 7_500}))
    assert derived.parameters_removed == 2_500 and "2.50K removed" in derived.label()
    student = Compression.of(base.replace(compression={"method": "distill", "teacher": "t/x", "layers": [0, 1]}))
    assert student.layers == 2 and student.label() == "distilled: 2-layer student of t/x"
    assert Compression.of(base) is None


def test_names_links_and_runs(records):
    record = of(records, "mfcc", "gender")
    assert card_url(record) is None
    hub = record.replace(model=type(record.model)(name="facebook/hubert-base-ls960", kind="transformers",
                                                  revision="abc123", weights_sha256=None, num_parameters=1,
                                                  num_layers=1, settings={"model_type": "hubert"}))
    assert card_url(hub) == "https://huggingface.co/facebook/hubert-base-ls960"
    checkpoint = next(record for record in records if record.checkpoint)
    assert run_name(checkpoint) == "models/pretraining-run"


def _audio(clips: dict[str, list[str]], *, benchmark: str | None = None, differing: tuple[str, ...] = ()) -> dict:
    fingerprint = stimulus_fingerprint(clips)
    reference = {"benchmark": "lab/speat-benchmark", "revision": "c" * 40, "test": benchmark,
                 "differing": list(differing)} if benchmark else None
    return {**fingerprint, "reference": reference}


def test_results_on_other_audio_are_marked_and_counted_and_mixed_methods_said(records):
    """Two runs of one model on audio that differs in one clip: their fingerprints differ, the second is labelled
    stimuli-differ, and the leaderboard marks it and counts the results on the reference audio."""
    clips = {role: [f"{role}{index}".encode().hex().ljust(64, "0") for index in range(3)] for role in "XYAB"}
    changed = {**clips, "Y": [*clips["Y"][:2], "f" * 64]}
    reference = stimulus_fingerprint(clips)["test"]
    made = [on_real_stimuli(of(records, name, "gender"), f"lab/{name}").replace(
        fingerprint=_audio(clips, benchmark=reference)) for name in ("mfcc", "stft", "spectrogram")]
    rerun = on_real_stimuli(of(records, "mfcc", "gender"), "lab/mfcc-on-changed-audio")
    rerun = rerun.replace(fingerprint=_audio(changed, benchmark=reference, differing=("saa/english102",)),
                          labels=(*rerun.labels, "stimuli-differ"))
    assert rerun.stimulus_fingerprint != made[0].stimulus_fingerprint
    table = build_table([*made, rerun])
    board = query_leaderboard(table, LeaderboardQuery(stimuli="real"))
    cells = dict(zip(board[C.MODEL], board[C.AUDIO]))
    assert cells["lab/mfcc-on-changed-audio"] == "⚠ differs: gender"
    assert dict(zip(board[C.MODEL], board["_audio_warning"])) == {name: name.endswith("changed-audio")
                                                                  for name in cells}
    assert {cells[f"lab/{name}"] for name in ("mfcc", "stft", "spectrogram")} == {"reference"}
    summary = audio_summary(table, table.leaderboard, "real")
    assert f"gender 3 of 4 (`{reference[:12]}`, the benchmark)" in summary and "marked ⚠" in summary
    assert mixed_methods(table.leaderboard, table) == ""
    other_profile = made[1].replace(model=made[1].model.__class__.from_dict(
        {**made[1].model.to_dict(), "name": "lab/s3prl-run"}), profile="s3prl")
    mixed = build_table([*made, other_profile])
    assert "2 extraction profiles (hf, s3prl)" in mixed_methods(mixed.leaderboard, mixed)
    old = build_table([made[0].replace(fingerprint=None)])
    assert set(old.leaderboard[C.AUDIO]) == {"unknown"} and audio_summary(old, old.leaderboard, "real") == ""
    same = build_table(made)
    assert "3 of 3" in audio_summary(same, same.leaderboard, "real")
    assert "marked ⚠" not in audio_summary(same, same.leaderboard, "real")


def test_the_holm_column_is_report_holm_p_texts_over_the_kept_results(table):
    kept = [table.record(int(index)) for index in table.frame["record"]]
    expected = dict(zip(zip(table.frame["variant"], table.frame["test"]), holm_p_texts(kept)))
    board = table.leaderboard[~table.leaderboard["_computed"]]
    checked = 0
    for _, row in board.iterrows():
        for test in table.tests:
            if (row["_variant"], test) in expected:
                assert row[C.holm_column(test)] == expected[(row["_variant"], test)]
                checked += 1
    assert checked >= len(board)
    # Holm by hand for one model's three tests: sorted p times (m - i), running maximum, capped at 1
    mfcc = [record for record in kept if record.model.name == "mfcc"]
    p_values = sorted((record.speat.p_value, record.test) for record in mfcc)
    adjusted, running = {}, 0.0
    for position, (p, test) in enumerate(p_values):
        running = max(running, min(1.0, (len(p_values) - position) * p))
        adjusted[test] = running
    row = board[board["_label"] == "mfcc"].iloc[0]
    for test, value in adjusted.items():
        text = row[C.holm_column(test)]
        assert float(text.lstrip("<")) == pytest.approx(value, rel=0.05), (test, text, value)
