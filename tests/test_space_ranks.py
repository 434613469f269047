"""speat_metric.space.ranks: each test's rank interval and tier on the leaderboard, from comparison.rank_records."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_space_fixtures import bundled, of

from speat_metric.comparison import rank_records
from speat_metric.space import columns as C
from speat_metric.space import ranks
from speat_metric.space.rows import LeaderboardQuery, build_table, query_leaderboard


@pytest.fixture(scope="module")
def records():
    return bundled()


@pytest.fixture(scope="module")
def table(records):
    return build_table(records)


def _same_measurement(record) -> tuple:
    """What comparable results share, read from the record directly (not through `comparability_labels`)."""
    cosines = record.cosines or {}
    return (record.test, record.stimulus_fingerprint, record.profile, json.dumps(record.pooling, sort_keys=True),
            record.speat.ddof, json.dumps([cosines.get(role) for role in "XYAB"]))


def _cells(table, test: str) -> dict[str, tuple[str, str]]:
    board = table.ranked_leaderboard
    return {label: (rank, tier) for label, rank, tier, computed in zip(
        board["_label"] + " " + board["_detail"], board[C.rank_column(test)], board[C.tier_column(test)],
        board["_computed"]) if not computed}


def test_the_bundle_has_a_test_where_three_models_share_stimuli(records):
    groups = {}
    for record in records:
        if record.cosines is not None:
            groups.setdefault(_same_measurement(record), []).append(record)
    assert max(len(group) for group in groups.values()) >= 3


@pytest.mark.parametrize("test", ["gender", "native"])
def test_rank_cells_are_rank_records_of_each_group_of_comparable_results(table, test):
    shown = set(table.leaderboard["_variant"])
    variant_of = dict(zip(table.frame["record"], table.frame["variant"]))
    kept = [table.record(int(index)) for index, variant in variant_of.items() if variant in shown]
    groups = {}
    for record in kept:
        if record.test == test and record.cosines is not None:
            groups.setdefault(_same_measurement(record), []).append(record)
    ranked = [group for group in groups.values() if len(group) >= 2]
    assert ranked
    board = table.ranked_leaderboard.set_index("_variant")
    index_of = {id(table.record(int(index))): int(index) for index in variant_of}
    checked = 0
    for group in ranked:
        by_label = {record.model_label: record for record in group}
        assert len(by_label) == len(group)
        for interval in rank_records(group, n_resamples=ranks.N_RESAMPLES, seed=ranks.SEED):
            row = board.loc[variant_of[index_of[id(by_label[interval.model])]]]
            assert row[C.rank_column(test)] == f"{interval.rank} ({interval.rank_low}-{interval.rank_high})"
            assert row[C.tier_column(test)] == str(interval.tier)
            checked += 1
    assert checked == sum(len(group) for group in ranked)
    shown_ranks = [rank for rank in board[C.rank_column(test)] if rank not in (ranks.NO_RANK, "")]
    assert any(rank.split(" ")[1] != f"({rank.split(' ')[0]}-{rank.split(' ')[0]})" for rank in shown_ranks), \
        "some rank has a real interval"


def test_records_without_cosines_or_alone_show_a_dash_and_are_left_out_of_the_others_ranks(records):
    mfcc = of(records, "mfcc", "gender")
    stft = of(records, "stft", "gender")
    changed = [record.replace(cosines=None) if record is mfcc else
               record.replace(profile="s3prl") if record is stft else record for record in records]
    table = build_table(changed)
    cells = _cells(table, "gender")
    assert cells["mfcc "] == (ranks.NO_RANK, ranks.NO_RANK)
    assert cells["stft "] == (ranks.NO_RANK, ranks.NO_RANK)  # alone with its profile
    board = table.ranked_leaderboard
    pooled = board[(board["_view"] == C.MEAN_VIEW) & ~board["_computed"]]
    with_gender = pooled[pooled[C.rank_column("gender")] != ""]
    shown = [int(rank.split(" ")[0]) for rank in with_gender[C.rank_column("gender")] if rank != ranks.NO_RANK]
    assert sorted(shown) == list(range(1, len(with_gender) - 1))  # ranked among the others only


def test_a_group_larger_than_the_limit_is_not_ranked(records):
    gender = [record for record in records if record.test == "gender" and record.pooling.get("layer") is None][:3]
    assert [cell.rank for cell in ranks.rank_cells(gender, max_ranked=2, n_resamples=200)] == [ranks.NO_RANK] * 3
    assert all(cell.rank != ranks.NO_RANK for cell in ranks.rank_cells(gender, max_ranked=3, n_resamples=200))


def test_ranking_by_d_still_ranks_by_d_and_the_rank_is_a_column(table):
    sort = C.SortOrder(C.d_column("gender"))
    selected = query_leaderboard(table, LeaderboardQuery(stimuli="synthetic", sort=sort))
    magnitudes = [value for value in selected["_sort:gender d"] if pd.notna(value)]
    assert magnitudes == sorted(magnitudes)
    assert C.rank_column("gender") in selected and C.tier_column("gender") in selected
    by_rank = query_leaderboard(table, LeaderboardQuery(stimuli="synthetic", sort=C.SortOrder(
        C.rank_column("gender"))))
    numbers = [value for value in by_rank[f"_sort:{C.rank_column('gender')}"] if pd.notna(value)]
    assert numbers and numbers == sorted(numbers)


def test_a_computed_mean_over_layers_has_no_rank(records):
    per_layer_only = [record for record in records if not (record.model.name == "random:melhubert-small"
                                                           and record.pooling.get("layer") is None)]
    board = build_table(per_layer_only).ranked_leaderboard
    computed = board[board["_computed"]]
    assert len(computed) == 1 and computed[C.rank_column("gender")].tolist() == [ranks.NO_RANK]
