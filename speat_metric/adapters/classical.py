"""Classical acoustic features as a one-layer `SpeechEncoder`: the baselines of Lin et al. (2024), Table 3.

Each feature comes from `speat_metric.features` with S3PRL's defaults (see that module): ``"stft"``
(`stft_magnitude`), ``"spectrogram"`` (`log_power_spectrogram`), ``"mel_spectrogram"`` (`log_mel_spectrogram`)
and ``"mfcc"`` (`mfcc`, with deltas of order 1 and 2 appended as S3PRL does). Features are computed clip by clip,
so padding never changes a clip's frames. S3PRL's per-utterance CMVN is off by default (``cmvn=True`` turns it
on): SpEAT averages over time, so every embedding would be a zero vector up to rounding (docs/adapters.md).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from speat_metric import features
from speat_metric.adapters.base import SAMPLING_RATE, EncoderOutput, ModelDescription, SpeechEncoder, pad_batch

logger = logging.getLogger(__name__)

CLASSICAL_FEATURES = ("stft", "spectrogram", "mel_spectrogram", "mfcc")
"""Names accepted by `ClassicalFeatureEncoder`, in the order of Lin et al.'s Table 3."""

_FEATURE_FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "stft": features.stft_magnitude,
    "spectrogram": features.log_power_spectrogram,
    "mel_spectrogram": features.log_mel_spectrogram,
    "mfcc": features.mfcc,
}
_S3PRL_DELTA_ORDER = {"stft": 0, "spectrogram": 0, "mel_spectrogram": 0, "mfcc": 2}


class ClassicalFeatureEncoder(SpeechEncoder):
    """One classical feature, per frame, as a single "layer" of hidden states.

    Args:
        name: one of `CLASSICAL_FEATURES`.
        delta_order: deltas appended to the feature (0: none); None for S3PRL's choice (2 for ``"mfcc"``, else 0).
        delta_win_length: frames in the delta regression window (S3PRL: 5).
        cmvn: normalise each clip to zero mean and unit variance per dimension, as S3PRL does; off by default
            because mean pooling then leaves only rounding noise (see the module docstring).
        feature_options: keyword arguments of the feature function that override its defaults, e.g.
            ``{"n_mels": 40}`` for ``"mel_spectrogram"``. Randomness (``dither``) needs a ``seed``.

    Raises:
        ValueError: an unknown name or option, a sampling rate other than 16 kHz, dither without a seed, or a
            negative delta order.

    Example:
        >>> encoder = ClassicalFeatureEncoder("mfcc")
        >>> output = encoder.encode([np.zeros(16_000, np.float32), np.ones(8_000, np.float32)])
        >>> tuple(output.hidden_states[0].shape), output.frame_mask.sum(dim=1).tolist()
        ((2, 98, 39), [98, 48])
        >>> encoder.description.settings["num_ceps"], encoder.description.num_layers
        (13, 1)
    """

    supports_padding = True

    def __init__(self, name: str, *, delta_order: int | None = None, delta_win_length: int = 5, cmvn: bool = False,
                 feature_options: Mapping[str, Any] | None = None) -> None:
        if name not in _FEATURE_FUNCTIONS:
            raise ValueError(f"unknown classical feature {name!r}; choose one of {', '.join(CLASSICAL_FEATURES)}")
        self._function = _FEATURE_FUNCTIONS[name]
        self._options = _resolve_options(name, self._function, dict(feature_options or {}))
        self.delta_order = _S3PRL_DELTA_ORDER[name] if delta_order is None else delta_order
        if self.delta_order < 0:
            raise ValueError(f"delta_order must be 0 or more, got {self.delta_order}")
        if self.delta_order and delta_win_length < 3:
            raise ValueError(f"delta_win_length must be at least 3, got {delta_win_length}")
        self.delta_win_length = delta_win_length
        self.cmvn = cmvn
        if cmvn:
            logger.warning("%s with per-clip CMVN: every time-averaged embedding is zero up to rounding, so SpEAT on "
                           "mean-pooled features measures float noise", name)
        settings = {"function": f"speat_metric.features.{self._function.__name__}", **self._options,
                    "delta_order": self.delta_order, "cmvn": cmvn}
        if self.delta_order:
            settings["delta_win_length"] = delta_win_length
        self.description = ModelDescription(name=name, kind="feature", revision=None, weights_sha256=None,
                                            num_parameters=0, num_layers=1, settings=settings)

    def clip_features(self, waveform: np.ndarray) -> np.ndarray:
        """The (frames, dim) float32 features of one 16 kHz mono waveform, deltas and CMVN included as configured."""
        frames = self._function(waveform, **self._options)
        if self.delta_order:
            frames = features.append_deltas(frames, order=self.delta_order, win_length=self.delta_win_length)
        if self.cmvn:
            frames = features.cmvn(frames)
        return frames

    def encode(self, waveforms: Sequence[np.ndarray]) -> EncoderOutput:
        """Features of each clip, right-padded with zeros to the longest clip's frame count and masked.

        Raises:
            ValueError: an empty batch, or a clip the feature cannot use (e.g. shorter than one frame); the message
                gives the clip's position in the batch.
        """
        if len(waveforms) == 0:
            raise ValueError("encode needs at least one waveform, got an empty batch")
        per_clip = []
        for index, waveform in enumerate(waveforms):
            try:
                per_clip.append(self.clip_features(waveform))
            except features.FeatureError as error:
                message = f"clip {index} of the batch: {error} (feature {self.description.name!r})"
                raise features.FeatureError(message) from error
        batch, mask = pad_batch(per_clip)
        return EncoderOutput(hidden_states=[batch], frame_mask=mask)


def _resolve_options(name: str, function: Callable[..., np.ndarray], overrides: dict[str, Any]) -> dict[str, Any]:
    """Every keyword parameter of `function` with its value: the default unless overridden."""
    parameters = {key: parameter.default for key, parameter in inspect.signature(function).parameters.items()
                  if parameter.kind is inspect.Parameter.KEYWORD_ONLY}
    unknown = sorted(set(overrides) - set(parameters))
    if unknown:
        raise ValueError(f"feature_options {unknown} are not parameters of {function.__name__} (feature {name!r}); "
                         f"valid: {', '.join(parameters)}")
    options = {**parameters, **overrides}
    if options.get("sampling_rate", SAMPLING_RATE) != SAMPLING_RATE:
        raise ValueError(f"sampling_rate={options['sampling_rate']}: encoders take {SAMPLING_RATE} Hz waveforms; "
                         "resample the audio (speat_metric.audio.load_audio does) instead of changing the feature's "
                         "rate")
    if options.get("dither", 0.0) != 0.0 and options.get("seed") is None:
        raise ValueError(f"dither={options['dither']} without a seed would make the {name!r} embeddings "
                         "irreproducible; pass feature_options={'dither': ..., 'seed': 0}")
    return options
