"""The evaluation pipeline: stimuli -> audio -> adapter -> pooled embeddings -> `speat_test` -> `EvaluationRecord`.

`embed_stimuli` decodes and encodes each distinct clip once (clips are identified by the SHA-256 of their file, so a
clip used by several tests is embedded once), in length-sorted batches of at most ``batch_seconds`` of padded audio,
serving and filling the `EmbeddingCache`. Under ``accelerate launch`` with several processes, the clips to compute
are split across processes and the embeddings gathered, so every process ends with all of them.

`evaluate_tests` runs the SpEAT of every test on those embeddings, with the requested layer pooling.
"""

from __future__ import annotations

import logging
import math
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from speat_metric import __version__
from speat_metric.adapters.base import SAMPLING_RATE, SpeechEncoder
from speat_metric.audio import AudioDecodeError, load_audio
from speat_metric.cache import EmbeddingCache
from speat_metric.pooling import LayerPooling, NoFramesError, pool_frames
from speat_metric.profiles import comparability_labels, get_profile
from speat_metric.progress import ProgressBar
from speat_metric.results import MIN_TARGETS, EvaluationRecord, display_name
from speat_metric.statistics import association_scores, partitions_tested, speat_test

if TYPE_CHECKING:
    from speat_metric.stimuli.fingerprints import BenchmarkReference

logger = logging.getLogger(__name__)

ROLES = ("X", "Y", "A", "B")


@dataclass(frozen=True)
class Clip:
    """One audio file to embed: its content hash (the identity), where it is, and a name for messages."""

    sha256: str
    path: str
    stimulus_id: str


def clips_of(rows: Sequence[Mapping[str, Any]]) -> list[Clip]:
    """The distinct clips of stimulus rows (``stimulus_id``, ``audio`` {path}, ``sha256``), first occurrence kept."""
    clips: dict[str, Clip] = {}
    for row in rows:
        audio = row["audio"]
        path = audio["path"] if isinstance(audio, Mapping) else audio
        clips.setdefault(row["sha256"], Clip(row["sha256"], path, row["stimulus_id"]))
    return list(clips.values())


def embed_stimuli(
    encoder: SpeechEncoder,
    clips: Sequence[Clip],
    *,
    cache_dir: str | Path | None = None,
    frame_pooling: str = "mean",
    batch_seconds: float = 60.0,
    trim_silence: bool = False,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Per-layer, frame-pooled embeddings of every clip: ``{sha256: (layers, dim) float32}``.

    Audio is decoded with the resampler of the encoder's extraction profile (``encoder.profile``); the profile and
    the resampler are part of the cache key, so embeddings of one profile never serve another.

    Args:
        encoder: the model adapter.
        clips: the clips to embed (see `clips_of`).
        cache_dir: the embedding cache (see `speat_metric.cache.default_cache_root`); None computes everything.
        frame_pooling: ``"mean"`` or ``"max"`` over each clip's valid frames, per layer.
        batch_seconds: upper bound of padded audio per batch (a longer clip forms a batch of its own).
        trim_silence: trim leading and trailing silence before encoding (off by default, as in the studies).
        progress: show a progress bar (on the main process only).
    """
    if batch_seconds <= 0:
        raise ValueError(f"batch_seconds must be positive, got {batch_seconds}")
    cache = None
    if cache_dir is not None:
        cache = EmbeddingCache(cache_dir, {"model": encoder.description.to_dict(), "frame_pooling": frame_pooling,
                                           "trim_silence": trim_silence, "sampling_rate": SAMPLING_RATE,
                                           "profile": encoder.profile,
                                           "resampler": get_profile(encoder.profile).resampler})
    embeddings: dict[str, np.ndarray] = {}
    missing = []
    for clip in clips:
        cached = cache.load(clip.sha256) if cache is not None else None
        if cached is None:
            missing.append(clip)
        else:
            embeddings[clip.sha256] = cached
    state = _distributed_state()
    mine = missing[state.process_index::state.num_processes] if state is not None else missing
    if cache is not None:
        logger.info("%d of %d clips from the cache%s", len(embeddings), len(clips),
                    ", no forward pass" if not missing else f"; embedding {len(missing)}")
    computed = _compute(encoder, mine, frame_pooling=frame_pooling, batch_seconds=batch_seconds,
                        trim_silence=trim_silence, progress=progress and (state is None or state.is_main_process))
    if cache is not None:
        for sha256, embedding in computed.items():
            cache.store(sha256, embedding)
    if state is not None and state.num_processes > 1:
        from accelerate.utils import gather_object

        computed = dict(pair for part in gather_object([list(computed.items())]) for pair in part)
    embeddings.update(computed)
    return embeddings


def evaluate_tests(
    encoder: SpeechEncoder,
    tests: Mapping[str, Any],
    *,
    layer_pooling: LayerPooling = LayerPooling(),
    frame_pooling: str = "mean",
    cache_dir: str | Path | None = None,
    batch_seconds: float = 60.0,
    trim_silence: bool = False,
    num_permutations: int = 1_000_000,
    seed: int | None = 0,
    labels: Sequence[str] = (),
    checkpoint: Mapping[str, Any] | None = None,
    progress: bool = True,
    reference: BenchmarkReference | None = None,
) -> list[EvaluationRecord]:
    """Run every test's SpEAT on one encoder; each distinct clip is embedded once across all tests.

    Args:
        encoder: the model adapter.
        tests: ``{test name: datasets.Dataset}`` as made by `speat_metric.stimuli.load_speat_test`.
        layer_pooling: which layers to test (mean over layers by default; ``per-layer`` gives one record per layer).
        frame_pooling, cache_dir, batch_seconds, trim_silence, progress: see `embed_stimuli`.
        num_permutations, seed: see `speat_test`. Each test uses the same seed.
        labels: flags to carry into every record (e.g. ``random-init``); ``synthetic-stimuli`` is added when the
            stimuli are the demo set, and the comparability labels of `speat_metric.profiles.comparability_labels`
            (e.g. ``unnormalised-input``) always. Records carry the encoder's profile.
        checkpoint: name and step of the checkpoint, for per-checkpoint curves.
        reference: the benchmark's record of the study's audio: each record's fingerprint is compared with it, and
            a test with a clip whose bytes differ is labelled ``stimuli-differ``.

    Returns:
        One record per test and tested layer view.
    """
    from speat_metric.stimuli import stimulus_provenance
    from speat_metric.stimuli.fingerprints import rows_fingerprint

    all_rows = [row for dataset in tests.values() for row in dataset]
    embeddings = embed_stimuli(encoder, clips_of(all_rows), cache_dir=cache_dir, frame_pooling=frame_pooling,
                               batch_seconds=batch_seconds, trim_silence=trim_silence, progress=progress)
    records = []
    num_layers = next(iter(embeddings.values())).shape[0]
    speats = len(tests) * (num_layers if layer_pooling.mode == "per-layer" else 1)
    bar = ProgressBar(speats, unit="test", desc=permutation_bar_label(encoder.description.name, tests.values(),
                                                                      num_permutations),
                      enabled=progress and is_main_process())
    with bar:  # closed on an error too, so that an error message starts on a line of its own
        for name, dataset in tests.items():
            rows = list(dataset)
            provenance = stimulus_provenance(dataset)
            by_role = {role: [row for row in rows if row["role"] == role] for role in ROLES}
            per_layer = {role: np.stack([embeddings[row["sha256"]] for row in by_role[role]]) if by_role[role] else None
                         for role in ROLES}
            empty = [role for role in ROLES if per_layer[role] is None]
            if empty:
                raise ValueError(f"test {name!r} has no stimuli in role(s) {', '.join(empty)}")
            views = {role: layer_pooling.views(per_layer[role]) for role in ROLES}
            fingerprint = {**rows_fingerprint(rows),
                           "reference": reference.comparison(name, rows) if reference is not None else None}
            differ = ["stimuli-differ"] if fingerprint["reference"] and fingerprint["reference"]["differing"] else []
            differ += ["small-groups"] if min(len(by_role["X"]), len(by_role["Y"])) < MIN_TARGETS else []
            synthetic = ["synthetic-stimuli"] if provenance.get("synthetic") else []
            record_labels = tuple(dict.fromkeys([*labels, *synthetic, *differ,
                                                 *comparability_labels(encoder.description, encoder.profile)]))
            for view_index, (layer, _) in enumerate(views["X"]):
                x, y, a, b = (views[role][view_index][1] for role in ROLES)
                result = speat_test(x, y, a, b, num_permutations=num_permutations, seed=seed,
                                    pairs=matched_pairs(by_role["X"], by_role["Y"]))
                scores = association_scores(np.concatenate([x, y]), a, b)
                records.append(EvaluationRecord(
                    test=name,
                    groups={role: by_role[role][0]["group"] for role in ROLES},
                    model=encoder.description,
                    speat=result,
                    pooling={"frame_pooling": frame_pooling, "layer_pooling": layer_pooling.mode, "layer": layer},
                    stimuli=provenance,
                    environment=environment(),
                    created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    labels=record_labels,
                    checkpoint=dict(checkpoint) if checkpoint is not None else None,
                    profile=encoder.profile,
                    association_scores=_scores_by_stimulus(scores, by_role["X"], by_role["Y"]),
                    fingerprint=fingerprint,
                ))
                bar.advance()
    return records


def permutation_bar_label(model: str, tests: Iterable[Any], num_permutations: int) -> str:
    """What the permutation tests of a model go through, as its progress bar says it: every partition of an exact
    test (with their number), or the random sample of a larger one.

    Example:
        >>> permutation_bar_label("mfcc", [{"role": ["X"] * 4 + ["Y"] * 3}], 1_000_000)
        'SpEAT of mfcc (exact: all 35 partitions)'
    """
    kinds = []
    for dataset in tests:
        roles = list(dataset["role"])
        count, exact = partitions_tested(roles.count("X"), roles.count("Y"), num_permutations)
        kinds.append(f"exact: all {count:,} partitions" if exact else f"{count:,} random partitions")
    return f"SpEAT of {display_name(model)} ({', '.join(dict.fromkeys(kinds))})"


def _scores_by_stimulus(scores: np.ndarray, x_rows: Sequence[Mapping[str, Any]],
                        y_rows: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """s(w) of each target, by role, with its stimulus id (X rows first, as `association_scores` got them)."""
    ids = [row["stimulus_id"] for row in [*x_rows, *y_rows]]
    entries = [{"id": stimulus_id, "s": float(score)} for stimulus_id, score in zip(ids, scores)]
    return {"X": entries[:len(x_rows)], "Y": entries[len(x_rows):]}


def matched_pairs(x_rows: Sequence[Mapping[str, Any]], y_rows: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
    """(X row, Y row) index pairs from ``pair_id`` when every X and Y row has exactly one partner, else None."""
    x_ids = [row.get("pair_id") for row in x_rows]
    y_ids = [row.get("pair_id") for row in y_rows]
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


def _compute(encoder: SpeechEncoder, clips: Sequence[Clip], *, frame_pooling: str, batch_seconds: float,
             trim_silence: bool, progress: bool) -> dict[str, np.ndarray]:
    if not clips:
        return {}
    by_sha = {clip.sha256: clip for clip in clips}
    resampler = get_profile(encoder.profile).resampler
    waveforms = {clip.sha256: _decode(clip, trim_silence, resampler) for clip in clips}
    batches = length_batches([(clip.sha256, len(waveforms[clip.sha256])) for clip in clips],
                             max_samples=int(batch_seconds * SAMPLING_RATE), allow_padding=encoder.supports_padding)
    results: dict[str, np.ndarray] = {}
    total_seconds = math.ceil(sum(len(waveform) for waveform in waveforms.values()) / SAMPLING_RATE)
    samples_done = 0
    with ProgressBar(total_seconds, unit="s audio", desc=f"embedding with {display_name(encoder.description.name)}",
                     enabled=progress) as bar, torch.inference_mode():
        for batch in batches:
            batch_clips = [by_sha[sha256] for sha256 in batch]
            try:
                pooled = pool_frames(encoder.encode([waveforms[sha256] for sha256 in batch]), frame_pooling)
            except NoFramesError as error:
                raise ValueError(_too_short(encoder, [batch_clips[index] for index in error.indices], waveforms,
                                            "gives no frames")) from None
            except RuntimeError as error:  # e.g. a convolution kernel longer than the clip
                raise ValueError(_too_short(encoder, batch_clips, waveforms, f"cannot be encoded ({_first_line(error)})"
                                            )) from error
            results.update(zip(batch, pooled))
            samples_done += sum(len(waveforms[sha256]) for sha256 in batch)
            bar.advance_to(samples_done // SAMPLING_RATE)
        bar.advance_to(total_seconds)
    return results


def _decode(clip: Clip, trim_silence: bool, resampler: str) -> np.ndarray:
    try:
        return load_audio(clip.path, sampling_rate=SAMPLING_RATE, trim_silence=trim_silence, name=clip.stimulus_id,
                          resampler=resampler)
    except AudioDecodeError as error:
        from speat_metric.stimuli import default_cache_dir
        from speat_metric.stimuli.errors import DOWNLOADED_FILE_HINT

        if Path(clip.path).resolve().is_relative_to(default_cache_dir().resolve()):
            raise AudioDecodeError(f"{error}; {DOWNLOADED_FILE_HINT}", error.problem) from None
        raise


def _too_short(encoder: SpeechEncoder, clips: Sequence[Clip], waveforms: Mapping[str, np.ndarray], what: str) -> str:
    described = "; ".join(f"stimulus {clip.stimulus_id} ({clip.path}, {len(waveforms[clip.sha256]) / SAMPLING_RATE:.3f}"
                          " s)" for clip in clips)
    return (f"{described}: too short for {encoder.description.name} (the clip {what}); remove it from the test or "
            "give a longer recording")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def length_batches(items: Sequence[tuple[str, int]], *, max_samples: int, allow_padding: bool) -> list[list[str]]:
    """Group (key, length) items into batches of similar length, longest first.

    A batch's padded size (its size times its longest item) stays within `max_samples` unless one item alone
    exceeds it. Without `allow_padding`, a batch holds items of one length only.
    """
    ordered = sorted(items, key=lambda item: item[1], reverse=True)
    batches: list[list[str]] = []
    current: list[str] = []
    longest = 0
    for key, length in ordered:
        fits = (len(current) + 1) * max(longest, length) <= max_samples
        same_length = allow_padding or not current or length == longest
        if current and fits and same_length:
            current.append(key)
        else:
            if current:
                batches.append(current)
            current, longest = [key], length
    if current:
        batches.append(current)
    return batches


def default_device() -> str:
    """This process's device: its accelerator under ``accelerate launch``, else CUDA when present, else the CPU."""
    state = _distributed_state()
    if state is not None:
        return str(state.device)
    return "cuda" if torch.cuda.is_available() else "cpu"


def is_main_process() -> bool:
    """False only in the secondary processes of a multi-process launch (they must not write results)."""
    state = _distributed_state()
    return state is None or state.is_main_process


def _distributed_state():
    """accelerate's process state when several processes run, else None (plain single-process use)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState

    # Without CUDA, accelerate only forms a multi-process group when told to use the CPU (gloo backend).
    return PartialState(cpu=not torch.cuda.is_available())
