"""Denoising distillation (M2D-S, Niizumi et al. 2024): the student hears speech mixed with noise, the teacher the
clean speech.

`NoiseSource` draws a noise segment as long as a crop: white Gaussian noise (``synthetic``) or a random segment of a
random recording from a folder (any rate, decoded like the training audio; a recording shorter than the crop is
repeated). `mix` scales the noise to the speech's RMS and mixes the two in M2D-S's "alpha to (1 - alpha) ratio":
``(1 - alpha) * speech + alpha * noise``. Everything is drawn from the batch's seeded generator, so a resumed run
hears the same noise.

Because both parts have the same RMS before mixing, alpha fixes the mix's signal-to-noise ratio exactly:
``SNR = 20 log10((1 - alpha) / alpha)`` dB (`snr_db`; alpha 0.2 is 12.04 dB), and `mix_ratio_for_snr` inverts it.
M2D-S mixes log-Mel spectrograms in the linear (power) domain instead, where its alpha 0.2 puts the noise 6.02 dB
below the speech (docs/distillation.md, "Denoising distillation").

Example:
    >>> rng = np.random.default_rng(0)
    >>> speech = np.sin(np.arange(1600, dtype=np.float32) / 5)
    >>> noisy = mix(speech, NoiseSource.synthetic().sample(len(speech), rng), 0.2)
    >>> noisy.shape, noisy.dtype
    ((1600,), dtype('float32'))
    >>> round(snr_db(0.2), 2), round(mix_ratio_for_snr(6.0), 4)
    (12.04, 0.3339)
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from speat_metric.training.data import TrainingAudio, TrainingDataError, open_training_audio

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from speat_metric.distill.config import NoiseConfig

SYNTHETIC = "synthetic"
_SILENCE = 1e-8


class NoiseSource:
    """Noise segments for mixing: `synthetic` (white Gaussian) or `folder` (recordings). Picklable (it runs in
    dataloader workers)."""

    def __init__(self, name: str, audio: TrainingAudio | None = None) -> None:
        self.name = name
        self.audio = audio

    @classmethod
    def synthetic(cls) -> NoiseSource:
        return cls(SYNTHETIC)

    @classmethod
    def folder(cls, path: str | Path, *, progress: bool = True) -> NoiseSource:
        """The recordings of a folder (searched recursively), their headers checked now.

        Raises:
            TrainingDataError: no usable recording (the message names the folder).
        """
        path = Path(path)
        if not path.is_dir():
            raise TrainingDataError(f"--noise {path}: no such folder; give a folder of noise recordings or "
                                    "'synthetic'")
        try:
            audio = open_training_audio(path).check_files(min_seconds=0.05, progress=progress)
        except TrainingDataError as error:
            raise TrainingDataError(str(error).replace("--data", "--noise", 1)) from None
        return cls(str(path), audio)

    @classmethod
    def from_setting(cls, source: str | None, *, progress: bool = True) -> NoiseSource | None:
        """``--noise``: None, ``synthetic`` or a folder."""
        if source is None:
            return None
        return cls.synthetic() if source == SYNTHETIC else cls.folder(source, progress=progress)

    def sample(self, length: int, generator: np.random.Generator) -> np.ndarray:
        """A float32 noise segment of `length` samples at 16 kHz."""
        if self.audio is None:
            return generator.standard_normal(length).astype(np.float32)
        for _ in range(len(self.audio)):
            index = int(generator.integers(len(self.audio)))
            try:
                recording = self.audio.read(index)
            except Exception as error:  # noqa: BLE001 - a bad noise file is skipped, never fatal
                logger.warning("skipping noise recording %s: %s", self.audio.name(index), error)
                continue
            if len(recording) == 0:
                continue
            if len(recording) < length:
                recording = np.tile(recording, -(-length // len(recording)))
            start = int(generator.integers(len(recording) - length + 1))
            return np.ascontiguousarray(recording[start:start + length], dtype=np.float32)
        raise TrainingDataError(f"--noise {self.name}: no noise recording could be decoded")


def scaled_noise(speech: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """`noise` scaled to the RMS of `speech` (silent speech or noise: returned as it is)."""
    speech_rms = float(np.sqrt(np.mean(np.square(speech, dtype=np.float64))))
    noise_rms = float(np.sqrt(np.mean(np.square(noise, dtype=np.float64))))
    if speech_rms < _SILENCE or noise_rms < _SILENCE:
        return noise.astype(np.float32)
    return (noise * (speech_rms / noise_rms)).astype(np.float32)


def mix(speech: np.ndarray, noise: np.ndarray, ratio: float) -> np.ndarray:
    """``(1 - ratio) * speech + ratio * noise``, the noise first scaled to the speech's RMS (float32)."""
    return ((1.0 - ratio) * speech + ratio * scaled_noise(speech, noise)).astype(np.float32)


def snr_db(ratio: float) -> float:
    """The signal-to-noise ratio in dB of `mix` at `ratio` (alpha): ``20 log10((1 - alpha) / alpha)``."""
    return 20.0 * math.log10((1.0 - ratio) / ratio)


def mix_ratio_for_snr(snr: float) -> float:
    """The alpha of `mix` whose mix has `snr` dB: ``1 / (1 + 10 ** (snr / 20))`` (`snr_db` inverted)."""
    return 1.0 / (1.0 + 10.0 ** (snr / 20.0))


def noise_mix_ratio(settings: NoiseConfig) -> float:
    """The alpha a run mixes at: from ``noise.snr_db`` when it is set, otherwise ``noise.mix_ratio``."""
    return settings.mix_ratio if settings.snr_db is None else mix_ratio_for_snr(settings.snr_db)
