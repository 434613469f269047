"""speat_metric.space.rows and columns: records -> tidy rows -> the leaderboard, its filters and ranking."""

from __future__ import annotations

import pytest
from test_space_fixtures import SMALL, bundled, distilled_students, of, on_real_stimuli, pruning_sweep, shifted

from speat_metric.space import columns as C
from speat_metric.space.rows import (
    Compression,
    LeaderboardQuery,
    audio_summary,
    build_table,
    card_url,
    mixed_methods,
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


def test_one_row_per_variant_with_each_tests_d_p_and_interval(records, table):
    board = query_leaderboard(table, LeaderboardQuery(stimuli="synthetic", view=C.ALL_VIEWS,
                                                      columns=[c.name for c in C.leaderboard_columns(table.tests)]))
    variants = {(record.model_label, record.pooling.get("layer"), str(record.compression)) for record in table.records}
    assert len(board) == len(variants)
    mfcc = board[board[C.MODEL] == "mfcc"].iloc[0]
    for test in ("gender", "age", "native"):
        record = of(records, "mfcc", test)
        assert mfcc[f"{test} d"] == pytest.approx(record.speat.effect_size, abs=0.005)
        assert mfcc[f"{test} size"] == record.speat.effect_size_label
        assert mfcc[f"{test} p"] == pytest.approx(record.speat.p_value, rel=1e-2)
        assert mfcc[f"{test} CI"] == f"[{record.speat.ci_low:+.2f}, {record.speat.ci_high:+.2f}]"
    expected_mean = sum(abs(of(records, "mfcc", t).speat.effect_size) for t in ("gender", "age", "native")) / 3
    assert mfcc[C.MEAN_ABS_D] == pytest.approx(expected_mean, abs=0.01)


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
    assert len(pruned) == 3 and all("rows pruning" in label for label in pruned["compression"])
    features_only = LeaderboardQuery(stimuli="synthetic", sizes=("classical feature (no parameters)",))
    small = query_leaderboard(table, features_only)
    assert set(small["family"]) == {"classical feature"}
    layer_one = query_leaderboard(table, LeaderboardQuery(stimuli="synthetic", view="layer 1", columns=["layers"]))
    assert set(layer_one["layers"]) == {"layer 1"} and len(layer_one) == 2


def test_ranking_puts_the_least_biased_first_and_missing_values_last(table):
    board = query_leaderboard(table, LeaderboardQuery(stimuli="synthetic"))
    values = board[C.MEAN_ABS_D].dropna().tolist()
    assert values == sorted(values)
    by_parameters = query_leaderboard(table, LeaderboardQuery(stimuli="synthetic", sort_by="params (M)"))
    assert by_parameters["params (M)"].tolist() == sorted(by_parameters["params (M)"])


def test_a_re_run_replaces_the_older_record(records):
    old = of(records, "mfcc", "gender").replace(created="2020-01-01T00:00:00+00:00")
    new = shifted(old, 0.5, created="2030-01-01T00:00:00+00:00")
    table = build_table([old, new])
    assert table.superseded == 1 and len(table.frame) == 1
    assert table.frame["d"].iloc[0] == pytest.approx(new.speat.effect_size)


def test_columns_shown_by_default_and_always(table):
    default = visible_columns(table, None)
    assert "revision" not in default and "gender p" in default and C.MODEL in default
    assert {C.MODEL, "gender d", "age d", "native d", "revision"} == set(visible_columns(table, ["revision"]))


def test_compression_fields_as_the_space_reads_them(records):
    base = of(records, SMALL, "gender")
    given = Compression.of(base.replace(compression={"method": "heads", "step": 2, "parameters_removed": 1500}))
    assert (given.method, given.step, given.parameters_removed) == ("heads", 2, 1500)
    derived = Compression.of(base.replace(compression={"method": "rows", "base_parameters": 10_000,
                                                       "parameters": 7_500}))
    assert derived.parameters_removed == 2_500 and "0.00M removed" in derived.label()
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
    assert cells["lab/mfcc-on-changed-audio ⚠"] == "⚠ differs: gender"
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
