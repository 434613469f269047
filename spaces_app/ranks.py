"""Rank intervals and tiers of the leaderboard's results, from `speat_metric.comparison.rank_records`.

Per test, the results of the leaderboard's rows (exact duplicates folded, as the table shows them) that
`speat_metric.comparison.comparability_labels` finds comparable (same stimuli, profile, pooling and ddof) and that
keep their cosine matrix form one group; `rank_records` ranks each group of two or more by |d| over joint bootstrap
resamples of the shared stimuli:

    rank*_k = 1 + #{j : |d*_j| < |d*_k|}   in each resample; its 95% percentile interval is the rank's interval,

and a tier holds the models the data cannot order against the tier's leader (`speat_metric.comparison`). The cells
read ``2 (1-4)`` and ``1``; a result without cosines (an older record), alone in its group, or in a group too large
to rank (more than `MAX_RANKED`) reads ``—``.

The resampling runs once per loaded table (`ResultTable.ranked_leaderboard` caches it) with a fixed seed and
`N_RESAMPLES` resamples, so a page stays fast and a reload gives the same intervals.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from speat_metric.comparison import RankInterval, comparability_labels, rank_records
from speat_metric.results import EvaluationRecord

if TYPE_CHECKING:
    from speat_metric.space.rows import ResultTable

logger = logging.getLogger(__name__)

N_RESAMPLES = 2_000
"""Joint resamples per group: enough for a rank interval's ends, cheap enough to run at every load."""
SEED = 0
MAX_RANKED = 150
"""The largest group ranked: `rank_records` compares every pair of models in every resample (memory and time grow
with resamples x models^2), so larger groups show ``—`` and the header's help says why."""

NO_RANK = "—"


@dataclass(frozen=True)
class RankCell:
    """What the leaderboard shows of one result's rank: the texts, and the numbers for sorting and exports."""

    rank: str
    tier: str
    interval: RankInterval | None = None


def comparable_groups(records: Sequence[EvaluationRecord]) -> list[list[int]]:
    """Indices of `records` that keep cosines, grouped so that `comparability_labels` is empty within a group (it
    compares fields for equality, so comparing with a group's first record is enough), in order of appearance."""
    groups: list[list[int]] = []
    for index, record in enumerate(records):
        if record.cosines is None:
            continue
        home = next((group for group in groups if not comparability_labels(records[group[0]], record)), None)
        if home is None:
            groups.append([index])
        else:
            home.append(index)
    return groups


def rank_cells(records: Sequence[EvaluationRecord], *, n_resamples: int = N_RESAMPLES, seed: int = SEED,
               max_ranked: int = MAX_RANKED) -> list[RankCell]:
    """One `RankCell` per record: its rank interval and tier within its comparable group (module docstring)."""
    cells = [RankCell(NO_RANK, NO_RANK)] * len(records)
    for group in comparable_groups(records):
        if not 2 <= len(group) <= max_ranked:
            continue
        members = [records[index] for index in group]
        try:
            intervals = rank_records(members, n_resamples=n_resamples, seed=seed)
        except ValueError as error:  # e.g. groups so small that no resample has a defined d: left unranked
            logger.warning("%s: not ranked: %s", members[0].test, error)
            continue
        # rank_records lists the models by |d| (a stable sort: ties keep their order), named by model label.
        order = sorted(range(len(members)), key=lambda position: abs(members[position].speat.effect_size))
        for interval, position in zip(intervals, order):
            record = members[position]
            if (interval.model, interval.effect_size) != (record.model_label, record.speat.effect_size):
                raise RuntimeError(f"rank of {interval.model} does not match {record.model_label}")
            cells[group[position]] = RankCell(format_rank(interval), str(interval.tier), interval)
    return cells


def format_rank(interval: RankInterval) -> str:
    """``2 (1-4)``: the rank by observed |d| and its 95% interval.

    Example:
        >>> format_rank(RankInterval("m", 0.3, 2, 1, 4, 1))
        '2 (1-4)'
    """
    return f"{interval.rank} ({interval.rank_low}-{interval.rank_high})"


def table_rank_cells(table: ResultTable) -> dict[int, RankCell]:
    """Rank cells of the table's results that have a leaderboard row (folded duplicates are not ranked twice), by
    record index."""
    shown = set(table.leaderboard["_variant"]) if len(table.leaderboard) else set()
    indices = [int(index) for index, variant in zip(table.frame["record"], table.frame["variant"])
               if variant in shown]
    return dict(zip(indices, rank_cells([table.record(index) for index in indices])))
