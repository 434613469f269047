"""Stimuli -> pooled embeddings: each distinct clip decoded and encoded once, batched, cached.

Clips are identified by the SHA-256 of their file, so a clip used by several tests is embedded once; batches are
length-sorted, at most ``batch_seconds`` of padded audio each; the `EmbeddingCache` serves and stores them. Under
``accelerate launch`` with several processes, the clips to compute are split across processes and the embeddings
gathered, so every process ends with all of them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from speat_metric.adapters.base import SAMPLING_RATE, SpeechEncoder
from speat_metric.audio import AudioDecodeError, load_audio
from speat_metric.cache import EmbeddingCache
from speat_metric.defaults import BATCH_SECONDS
from speat_metric.distributed import distributed_state
from speat_metric.pooling import NoFramesError, pool_frames
from speat_metric.profiles import get_profile
from speat_metric.progress import ProgressBar
from speat_metric.results import display_name

if TYPE_CHECKING:
    from speat_metric.stimuli.loaders import Stimulus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Clip:
    """One audio file to embed: its content hash (the identity), where it is, and a name for messages."""

    sha256: str
    path: str
    stimulus_id: str


def clips_of(stimuli: Iterable[Stimulus]) -> list[Clip]:
    """The distinct clips of some stimuli (by the SHA-256 of their file), first occurrence kept."""
    clips: dict[str, Clip] = {}
    for stimulus in stimuli:
        clips.setdefault(stimulus.sha256, Clip(stimulus.sha256, stimulus.path, stimulus.stimulus_id))
    return list(clips.values())


def embed_stimuli(
    encoder: SpeechEncoder,
    clips: Sequence[Clip],
    *,
    cache_dir: str | Path | None = None,
    frame_pooling: str = "mean",
    batch_seconds: float = BATCH_SECONDS,
    trim_silence: bool = False,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Per-layer, frame-pooled embeddings of every clip: ``{sha256: (layers, dim) float32}``.

    Audio is decoded with the resampler of the encoder's extraction profile (``encoder.profile``); the profile and
    the resampler are part of the cache key, so embeddings of one profile never serve another. `cache_dir` None
    computes everything; a clip longer than `batch_seconds` forms a batch of its own.
    """
    if batch_seconds <= 0:
        raise ValueError(f"batch_seconds must be positive, got {batch_seconds}")
    cache = None
    if cache_dir is not None:
        cache = EmbeddingCache(cache_dir, {"model": encoder.description.to_dict(), "frame_pooling": frame_pooling,
                                           "trim_silence": trim_silence, "sampling_rate": SAMPLING_RATE,
                                           "profile": encoder.profile,
                                           "resampler": get_profile(encoder.profile).resampler})
    cached = {clip.sha256: cache.load(clip.sha256) for clip in clips} if cache is not None else {}
    embeddings = {sha256: array for sha256, array in cached.items() if array is not None}
    missing = [clip for clip in clips if clip.sha256 not in embeddings]
    state = distributed_state()
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
    batches: list[list[str]] = []
    longest = 0  # of the last batch: its first item, as the items come longest first
    for key, length in sorted(items, key=lambda item: item[1], reverse=True):
        if batches and (len(batches[-1]) + 1) * longest <= max_samples and (allow_padding or length == longest):
            batches[-1].append(key)
        else:
            batches.append([key])
            longest = length
    return batches
