"""Pooled embeddings -> `speat_test` -> `EvaluationRecord`: the SpEAT of every test of one encoder.

`evaluate_tests` embeds every clip once (`speat_metric.embedding`), runs each test's SpEAT with the requested layer
pooling, and writes one record per test and layer view, with its labels (`record_labels`), provenance and
fingerprint.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from speat_metric import __version__
from speat_metric.adapters.base import SpeechEncoder
from speat_metric.cosines import cosines_of_test
from speat_metric.defaults import BATCH_SECONDS, NUM_PERMUTATIONS
from speat_metric.distributed import is_main_process
from speat_metric.embedding import clips_of, embed_stimuli
from speat_metric.pooling import LayerPooling
from speat_metric.profiles import comparability_labels
from speat_metric.progress import ProgressBar
from speat_metric.results import MIN_TARGETS, EvaluationRecord, ModelDescription, display_name
from speat_metric.statistics import partitions_tested, speat_test

if TYPE_CHECKING:
    from speat_metric.stimuli.fingerprints import BenchmarkReference
    from speat_metric.stimuli.loaders import Stimulus

ROLES = ("X", "Y", "A", "B")


def evaluate_tests(
    encoder: SpeechEncoder,
    tests: Mapping[str, Any],
    *,
    layer_pooling: LayerPooling = LayerPooling(),
    frame_pooling: str = "mean",
    cache_dir: str | Path | None = None,
    batch_seconds: float = BATCH_SECONDS,
    trim_silence: bool = False,
    num_permutations: int = NUM_PERMUTATIONS,
    seed: int | None = 0,
    labels: Sequence[str] = (),
    checkpoint: Mapping[str, Any] | None = None,
    progress: bool = True,
    reference: BenchmarkReference | None = None,
) -> list[EvaluationRecord]:
    """Run every test's SpEAT on one encoder; each distinct clip is embedded once across all tests.

    `tests` is ``{test name: StimulusSet}`` (`speat_metric.stimuli.load_speat_test`); every test uses the same seed.
    Returns one record per test and tested layer view (``per-layer`` gives one per layer), labelled by
    `record_labels` (`labels` are the model's own) and carrying `checkpoint` (name and step, for per-checkpoint
    curves); with a `reference` (the benchmark's record of the study's audio), each fingerprint is compared with it.
    """
    from speat_metric.stimuli.fingerprints import rows_fingerprint

    every_stimulus = [stimulus for test in tests.values() for stimulus in test]
    embeddings = embed_stimuli(encoder, clips_of(every_stimulus), cache_dir=cache_dir, frame_pooling=frame_pooling,
                               batch_seconds=batch_seconds, trim_silence=trim_silence, progress=progress)
    records = []
    num_layers = next(iter(embeddings.values())).shape[0]
    speats = len(tests) * (num_layers if layer_pooling.mode == "per-layer" else 1)
    bar = ProgressBar(speats, unit="test", desc=permutation_bar_label(encoder.description.name, tests.values(),
                                                                      num_permutations),
                      enabled=progress and is_main_process())
    with bar:  # closed on an error too, so that an error message starts on a line of its own
        for name, test in tests.items():
            provenance = test.provenance.to_dict()
            by_role = {role: test.of_role(role) for role in ROLES}
            empty = [role for role in ROLES if not by_role[role]]
            if empty:
                raise ValueError(f"test {name!r} has no stimuli in role(s) {', '.join(empty)}")
            views = [layer_pooling.views(np.stack([embeddings[stimulus.sha256] for stimulus in by_role[role]]))
                     for role in ROLES]
            fingerprint = {**rows_fingerprint(test),
                           "reference": reference.comparison(name, test) if reference is not None else None}
            test_labels = record_labels(labels, provenance=provenance, fingerprint=fingerprint,
                                        targets=(len(by_role["X"]), len(by_role["Y"])),
                                        model=encoder.description, profile=encoder.profile)
            pairs = matched_pairs(by_role["X"], by_role["Y"])
            ids = [[stimulus.stimulus_id for stimulus in by_role[role]] for role in ROLES]
            pair_ids = None if pairs is None else [(ids[0][i], ids[1][j]) for i, j in pairs]
            for (layer, x), (_, y), (_, a), (_, b) in zip(*views):
                result = speat_test(x, y, a, b, num_permutations=num_permutations, seed=seed, pairs=pairs)
                records.append(EvaluationRecord(
                    test=name,
                    groups={role: by_role[role][0].group for role in ROLES},
                    model=encoder.description,
                    speat=result,
                    pooling={"frame_pooling": frame_pooling, "layer_pooling": layer_pooling.mode, "layer": layer},
                    stimuli=provenance,
                    environment=environment(),
                    created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    labels=test_labels,
                    checkpoint=dict(checkpoint) if checkpoint is not None else None,
                    profile=encoder.profile,
                    association_scores=_scores_by_stimulus(result.scores, by_role["X"], by_role["Y"]),
                    fingerprint=fingerprint,
                    cosines=cosines_of_test((x, y, a, b), ids, pair_ids).to_dict(),
                ))
                bar.advance()
    return records


def record_labels(labels: Sequence[str], *, provenance: Mapping[str, Any], fingerprint: Mapping[str, Any],
                  targets: tuple[int, int], model: ModelDescription, profile: str) -> tuple[str, ...]:
    """Every label of a record, in one place: the model's own (`labels`: ``classical-feature``, ``random-init``, a
    caller's), ``synthetic-stimuli``, ``stimuli-differ``, ``small-groups`` and the profile's comparability labels."""
    made = [*labels]
    if provenance.get("synthetic"):
        made.append("synthetic-stimuli")
    if fingerprint.get("reference") and fingerprint["reference"]["differing"]:
        made.append("stimuli-differ")
    if min(targets) < MIN_TARGETS:
        made.append("small-groups")
    return tuple(dict.fromkeys([*made, *comparability_labels(model, profile)]))


def permutation_bar_label(model: str, tests: Iterable[Iterable[Any]], num_permutations: int) -> str:
    """What the permutation tests of a model go through, as its progress bar says it: every partition of an exact
    test (with their number), or the random sample of a larger one. `tests`: each test's stimuli (with a ``role``).

    Example:
        >>> from types import SimpleNamespace as Stimulus
        >>> permutation_bar_label("mfcc", [[Stimulus(role=role) for role in "XXXXYYY"]], 1_000_000)
        'SpEAT of mfcc (exact: all 35 partitions)'
    """
    kinds = []
    for test in tests:
        roles = [stimulus.role for stimulus in test]
        count, exact = partitions_tested(roles.count("X"), roles.count("Y"), num_permutations)
        kinds.append(f"exact: all {count:,} partitions" if exact else f"{count:,} random partitions")
    return f"SpEAT of {display_name(model)} ({', '.join(dict.fromkeys(kinds))})"


def _scores_by_stimulus(scores: np.ndarray, x: Sequence[Stimulus], y: Sequence[Stimulus]
                        ) -> dict[str, list[dict[str, Any]]]:
    """s(w) of each target, by role, with its stimulus id (X first, as `speat_test` computed them)."""
    entries = [{"id": stimulus.stimulus_id, "s": float(score)} for stimulus, score in zip([*x, *y], scores)]
    return {"X": entries[:len(x)], "Y": entries[len(x):]}


def matched_pairs(x: Sequence[Stimulus], y: Sequence[Stimulus]) -> np.ndarray | None:
    """(X, Y) index pairs from ``pair_id`` when every X and Y stimulus has exactly one partner, else None."""
    x_ids = [stimulus.pair_id for stimulus in x]
    y_ids = [stimulus.pair_id for stimulus in y]
    if None in x_ids or None in y_ids or sorted(x_ids) != sorted(y_ids) or len(set(x_ids)) != len(x_ids):
        return None
    y_index = {pair_id: index for index, pair_id in enumerate(y_ids)}
    return np.array([[index, y_index[pair_id]] for index, pair_id in enumerate(x_ids)])


def environment() -> dict[str, str]:
    """Versions of speat, Python and the libraries that shape a result."""
    versions = {"speat": __version__, "python": platform.python_version()}
    for package in ("numpy", "torch", "transformers", "datasets", "evaluate", "soundfile", "soxr"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
