"""Classical acoustic features: the baselines of Lin et al. (2024, Table 3) and the front ends of MelHuBERT and M2D.

Table 3's "STFT", "Spectrogram", "Mel Spectrogram" and "MFCC" are `stft_magnitude`, `log_power_spectrogram`,
`log_mel_spectrogram` and `mfcc`, with the defaults of the S3PRL upstreams Lin et al. used; `kaldi_fbank` is
``torchaudio.compliance.kaldi.fbank``. docs/adapters.md ("Classical features") says where each default comes from.

Framing, windows, FFT, pre-emphasis and mel filters are ``transformers.audio_utils``'; this module adds what it
lacks: argument checks (`FeatureError`), Kaldi's log energy, mirrored edges and seeded dither, the DCT and lifter,
deltas (`append_deltas`) and per-utterance CMVN (`cmvn`), which `speat_metric.adapters.classical` applies.
Every feature is a float32 (frames, features) array, computed in float64 (frame counts: docs/adapters.md).
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
from transformers import audio_utils

logger = logging.getLogger(__name__)

FLOAT32_EPSILON = float(np.finfo(np.float32).eps)
"""Kaldi's floor before every log (``std::numeric_limits<float>::epsilon()``), kept by torchaudio."""

WINDOWS = ("hann", "hamming", "povey", "rectangular", "blackman")
MEL_SCALES = ("htk", "kaldi", "slaney")
# Our (Kaldi's and torch's) window names -> audio_utils'; audio_utils has no Blackman window.
_AUDIO_UTILS_WINDOWS = {"hann": "hann", "hanning": "hann", "hamming": "hamming", "povey": "povey",
                        "rectangular": "boxcar"}
_PAD_MODES = {"reflect": "reflect", "constant": "constant", "replicate": "edge", "circular": "wrap"}  # torch -> numpy

# The mel scales are audio_utils' own: only the names are speat's.
hz_to_mel = audio_utils.hertz_to_mel
mel_to_hz = audio_utils.mel_to_hertz


class FeatureError(ValueError):
    """A waveform or a feature parameter is unusable; the message names the value and how to fix it."""


# ---------------------------------------------------------------------------------------------------------------
# Building blocks


def window_function(name: str, length: int, *, periodic: bool = True, blackman_coeff: float = 0.42) -> np.ndarray:
    """A float64 window of `length` samples by its Kaldi / torch name (`WINDOWS`; ``"hanning"`` is Hann).

    ``"povey"`` is Hann to the power 0.85, ``"blackman"`` Kaldi's generalised Blackman with `blackman_coeff`.
    `periodic` gives torch.stft's form (period `length`), else Kaldi's symmetric one (period `length` - 1).

    Example:
        >>> np.round(window_function("hann", 4), 6).tolist()
        [0.0, 0.5, 1.0, 0.5]
        >>> np.round(window_function("hanning", 5, periodic=False), 6).tolist()
        [0.0, 0.5, 1.0, 0.5, 0.0]
    """
    if name not in WINDOWS and name not in _AUDIO_UTILS_WINDOWS:
        raise FeatureError(f"window {name!r} is not one of {', '.join(WINDOWS)}")
    if length < 1:
        raise FeatureError(f"a window needs at least 1 sample, got length={length}")
    if name != "blackman":
        return audio_utils.window_function(length, _AUDIO_UTILS_WINDOWS[name], periodic=periodic)
    phase = 2.0 * np.pi * np.arange(length) / max(length if periodic else length - 1, 1)
    return blackman_coeff - 0.5 * np.cos(phase) + (0.5 - blackman_coeff) * np.cos(2.0 * phase)


def mel_filter_bank(
    *, num_frequency_bins: int, num_mel_filters: int, min_frequency: float, max_frequency: float, sampling_rate: int,
    mel_scale: str = "htk", norm: str | None = None, triangularize_in_mel_space: bool = False,
) -> np.ndarray:
    """``transformers.audio_utils.mel_filter_bank`` (same arguments), checked first, empty filters logged.

    Returns a float64 (num_frequency_bins, num_mel_filters) array: ``power_spectrum @ bank`` gives mel energies.
    `norm` is None (peak 1) or ``"slaney"`` (area); with `triangularize_in_mel_space` the triangles are straight
    in mels (Kaldi), else in Hz (torchaudio, librosa).

    Example:
        >>> bank = mel_filter_bank(num_frequency_bins=201, num_mel_filters=40, min_frequency=0.0,
        ...                        max_frequency=8000.0, sampling_rate=16000)
        >>> bank.shape, round(float(bank.max()), 2)
        ((201, 40), 1.0)
    """
    if num_frequency_bins < 2 or num_mel_filters < 1:
        raise FeatureError(
            f"need at least 2 frequency bins and 1 mel filter, got num_frequency_bins={num_frequency_bins}, "
            f"num_mel_filters={num_mel_filters}"
        )
    if not 0.0 <= min_frequency < max_frequency <= sampling_rate / 2:
        raise FeatureError(
            f"mel filters need 0 <= min_frequency < max_frequency <= sampling_rate / 2 = {sampling_rate / 2:g}, "
            f"got min_frequency={min_frequency}, max_frequency={max_frequency}"
        )
    if mel_scale not in MEL_SCALES:
        raise FeatureError(f"mel_scale {mel_scale!r} is not one of {', '.join(MEL_SCALES)}")
    if norm not in (None, "slaney"):
        raise FeatureError(f"norm must be None or 'slaney', got {norm!r}")
    with warnings.catch_warnings():  # it warns about empty filters; we log which ones, once
        warnings.simplefilter("ignore", UserWarning)
        bank = audio_utils.mel_filter_bank(
            num_frequency_bins=num_frequency_bins, num_mel_filters=num_mel_filters, min_frequency=min_frequency,
            max_frequency=max_frequency, sampling_rate=sampling_rate, norm=norm, mel_scale=mel_scale,
            triangularize_in_mel_space=triangularize_in_mel_space,
        )
    empty = np.flatnonzero(bank.max(axis=0) == 0.0)
    if len(empty):
        logger.warning(
            "mel filters %s contain no frequency bin; use fewer mel filters or a longer FFT", empty.tolist()
        )
    return bank


def dct_matrix(num_inputs: int, num_outputs: int) -> np.ndarray:
    """The orthonormal DCT-II as a matrix: ``x @ dct_matrix(n, k)`` is ``scipy.fft.dct(x, norm="ortho")[:k]``.

    Kaldi's MFCC transform, float64 (num_inputs, num_outputs); audio_utils has no DCT and scipy is no dependency.

    Example:
        >>> np.round(np.array([1.0, 2.0, 4.0, 8.0]) @ dct_matrix(4, 2), 6).tolist()
        [7.5, -5.114166]
    """
    if not 1 <= num_outputs <= num_inputs:
        raise FeatureError(
            f"need 1 <= num_outputs <= num_inputs, got num_outputs={num_outputs}, num_inputs={num_inputs}"
        )
    n = np.arange(num_inputs)[:, None]
    k = np.arange(num_outputs)[None, :]
    matrix = np.sqrt(2.0 / num_inputs) * np.cos(np.pi * k * (2 * n + 1) / (2 * num_inputs))
    matrix[:, 0] = np.sqrt(1.0 / num_inputs)
    return matrix


def deltas(features: np.ndarray, *, win_length: int = 5) -> np.ndarray:
    """Float32 regression deltas over time (HTK / torchaudio ``ComputeDeltas``), the end frames repeated at the edges.

    d[t] = sum_{k=1..N} k (c[t+k] - c[t-k]) / (2 sum_{k=1..N} k^2), with N = (win_length - 1) // 2; `win_length`
    is at least 3 (S3PRL uses 5).

    Example:
        >>> np.round(deltas(np.arange(6.0)[:, None]).ravel().astype(float), 6).tolist()  # flatter at the edges
        [0.5, 0.8, 1.0, 1.0, 0.8, 0.5]
    """
    features = _feature_matrix(features)
    if win_length < 3:
        raise FeatureError(f"win_length must be at least 3, got {win_length}")
    half = (win_length - 1) // 2
    padded = np.pad(features, ((half, half), (0, 0)), mode="edge")
    frames = len(features)
    numerator = sum(k * (padded[half + k : half + k + frames] - padded[half - k : half - k + frames])
                    for k in range(1, half + 1))
    return (numerator / (2.0 * sum(k * k for k in range(1, half + 1)))).astype(np.float32)


def append_deltas(features: np.ndarray, *, order: int = 2, win_length: int = 5) -> np.ndarray:
    """`features` followed by its deltas of order 1..`order` (each the delta of the previous), as S3PRL does.

    Example:
        >>> append_deltas(np.zeros((4, 13)), order=2).shape
        (4, 39)
    """
    features = _feature_matrix(features)
    if order < 0:
        raise FeatureError(f"delta order must be 0 or more, got {order}")
    blocks = [features.astype(np.float32)]
    for _ in range(order):
        blocks.append(deltas(blocks[-1], win_length=win_length))
    return np.concatenate(blocks, axis=1)


def cmvn(features: np.ndarray, *, eps: float = 1e-10) -> np.ndarray:
    """Per-utterance mean and variance normalisation: (x - mean) / (std + eps) per dimension, std with ddof=1.

    As in S3PRL's baseline extracter; every column of the result averages to zero over time. Needs 2 frames or more.

    Example:
        >>> np.round(cmvn(np.array([[1.0, 10.0], [3.0, 30.0], [2.0, 20.0]])).astype(float), 6).tolist()
        [[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]
    """
    features = _feature_matrix(features)
    if len(features) < 2:
        raise FeatureError(f"CMVN needs at least 2 frames to estimate a standard deviation, got {len(features)}")
    normalised = (features - features.mean(axis=0)) / (features.std(axis=0, ddof=1) + eps)
    return normalised.astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Features on a centred STFT (torch.stft conventions)


def stft_magnitude(
    waveform: np.ndarray,
    *,
    n_fft: int = 512,
    hop_length: int = 320,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "reflect",
    log: bool = False,
) -> np.ndarray:
    """Magnitude of the short-time Fourier transform, |STFT|, as ``torch.stft``: Table 3's "STFT".

    The parameters are torch.stft's (`window` a `window_function` name, periodic; `win_length` defaults to `n_fft`,
    a shorter window centred in the FFT frame; torch's `pad_mode` names). `log` returns log(max(|STFT|, 1e-8)),
    S3PRL's ``log`` option. Returns float32 (frames, n_fft // 2 + 1).

    Example:
        >>> stft_magnitude(np.ones(16_000, dtype=np.float32)).shape
        (51, 257)
    """
    spectrum = _centred_spectrogram(waveform, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                                    window=window, center=center, pad_mode=pad_mode, power=1.0)
    if log:
        spectrum = np.log(np.maximum(spectrum, 1e-8))
    return spectrum.astype(np.float32)


def log_mel_spectrogram(
    waveform: np.ndarray,
    *,
    sampling_rate: int = 16_000,
    n_mels: int = 80,
    n_fft: int = 400,
    win_length: int | None = None,
    hop_length: int = 160,
    f_min: float = 0.0,
    f_max: float | None = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "reflect",
    power: float = 2.0,
    mel_scale: str = "htk",
    norm: str | None = None,
    log_offset: float = 1e-10,
) -> np.ndarray:
    """Log mel spectrogram, log(mel(|STFT|^power) + log_offset), as torchaudio ``MelSpectrogram``: "Mel Spectrogram".

    torchaudio's parameters (the STFT's as in `stft_magnitude`; `f_max` None for Nyquist; `mel_scale` ``"htk"`` or
    ``"slaney"``, `norm` as in `mel_filter_bank`); `log_offset` keeps silence finite. Returns float32 (frames, n_mels).

    Example:
        >>> log_mel_spectrogram(np.ones(16_000, dtype=np.float32)).shape
        (101, 80)
    """
    if not log_offset > 0:
        raise FeatureError(f"log_offset must be positive to keep log finite on silence, got {log_offset}")
    if not power > 0:
        raise FeatureError(f"power must be positive, got {power}")
    bank = mel_filter_bank(
        num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels, min_frequency=f_min,
        max_frequency=sampling_rate / 2 if f_max is None else f_max, sampling_rate=sampling_rate,
        mel_scale=mel_scale, norm=norm,
    )
    mel = _centred_spectrogram(waveform, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
                               center=center, pad_mode=pad_mode, power=power, mel_filters=bank, mel_floor=0.0)
    return np.log(mel + log_offset).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Kaldi features (torchaudio.compliance.kaldi conventions)


def log_power_spectrogram(
    waveform: np.ndarray,
    *,
    sampling_rate: int = 16_000,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
    window_type: str = "povey",
    blackman_coeff: float = 0.42,
    preemphasis_coefficient: float = 0.97,
    remove_dc_offset: bool = True,
    round_to_power_of_two: bool = True,
    snip_edges: bool = True,
    dither: float = 0.0,
    seed: int | None = None,
    raw_energy: bool = True,
    energy_floor: float = 1.0,
) -> np.ndarray:
    """Kaldi's log power spectrum per frame (``compute-spectrogram-feats``): Table 3's "Spectrogram".

    ``torchaudio.compliance.kaldi.spectrogram`` with its parameters and defaults: each frame (`frame_length` every
    `frame_shift` ms, at least one in `waveform`) is dithered (optionally), DC-removed, pre-emphasised
    (x[n] - c x[n-1], x[-1] := x[0]), windowed (symmetric) and zero-padded to a power of two; the features are
    log(max(|FFT|^2, float32 eps)), feature 0 replaced by the frame's log energy (before pre-emphasis and window
    with `raw_energy`, floored at `energy_floor` unless 0) as in Kaldi. `snip_edges=False` mirrors the edges, one
    frame per shift. `dither` is the standard deviation of Gaussian noise, seeded by `seed`, added to every sample.
    Returns float32 (frames, padded_window // 2 + 1), 257 features at 16 kHz.

    Example:
        >>> log_power_spectrogram(np.random.default_rng(0).normal(size=16_000)).shape
        (98, 257)
    """
    frames = _KaldiFrames(
        waveform, sampling_rate=sampling_rate, frame_length=frame_length, frame_shift=frame_shift,
        window_type=window_type, blackman_coeff=blackman_coeff, preemphasis_coefficient=preemphasis_coefficient,
        remove_dc_offset=remove_dc_offset, round_to_power_of_two=round_to_power_of_two, snip_edges=snip_edges,
        dither=dither, seed=seed,
    )
    log_power = np.log(np.maximum(frames.spectrogram(power=2.0), FLOAT32_EPSILON))
    log_power[:, 0] = frames.log_energy(raw=raw_energy, floor=energy_floor)
    return log_power.astype(np.float32)


def kaldi_fbank(
    waveform: np.ndarray,
    *,
    num_mel_bins: int = 80,
    sampling_rate: int = 16_000,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    window_type: str = "povey",
    blackman_coeff: float = 0.42,
    preemphasis_coefficient: float = 0.97,
    remove_dc_offset: bool = True,
    round_to_power_of_two: bool = True,
    snip_edges: bool = True,
    dither: float = 0.0,
    seed: int | None = None,
    raw_energy: bool = True,
    energy_floor: float = 1.0,
    use_energy: bool = False,
    use_log_fbank: bool = True,
    use_power: bool = True,
) -> np.ndarray:
    """Kaldi filter banks (``compute-fbank-feats``), as ``torchaudio.compliance.kaldi.fbank``.

    torchaudio's parameters and defaults, except `num_mel_bins` (80, not 23) and the sampling rate's name: frames as
    in `log_power_spectrogram`, then `num_mel_bins` (more than 3) triangles in Kaldi's mel space between `low_freq`
    and `high_freq` (Hz; zero or negative means Nyquist + high_freq; Nyquist bin unused) and, with `use_log_fbank`,
    log(max(energy, float32 eps)); `use_energy` prepends the frame's log energy. VTLN warping is not supported.
    Returns float32 (frames, num_mel_bins + use_energy).

    Example:
        >>> features = kaldi_fbank(np.random.default_rng(0).normal(size=16_000))
        >>> features.shape, features.dtype
        ((98, 80), dtype('float32'))
    """
    frames = _KaldiFrames(
        waveform, sampling_rate=sampling_rate, frame_length=frame_length, frame_shift=frame_shift,
        window_type=window_type, blackman_coeff=blackman_coeff, preemphasis_coefficient=preemphasis_coefficient,
        remove_dc_offset=remove_dc_offset, round_to_power_of_two=round_to_power_of_two, snip_edges=snip_edges,
        dither=dither, seed=seed,
    )
    energies = frames.filter_banks(num_mel_bins=num_mel_bins, low_freq=low_freq, high_freq=high_freq,
                                   use_power=use_power, use_log=use_log_fbank)
    if use_energy:
        energies = np.concatenate([frames.log_energy(raw=raw_energy, floor=energy_floor)[:, None], energies], axis=1)
    return energies.astype(np.float32)


def mfcc(
    waveform: np.ndarray,
    *,
    num_ceps: int = 13,
    num_mel_bins: int = 23,
    cepstral_lifter: float = 22.0,
    use_energy: bool = False,
    sampling_rate: int = 16_000,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    window_type: str = "povey",
    blackman_coeff: float = 0.42,
    preemphasis_coefficient: float = 0.97,
    remove_dc_offset: bool = True,
    round_to_power_of_two: bool = True,
    snip_edges: bool = True,
    dither: float = 0.0,
    seed: int | None = None,
    raw_energy: bool = True,
    energy_floor: float = 1.0,
) -> np.ndarray:
    """Kaldi MFCCs (``compute-mfcc-feats``), as ``torchaudio.compliance.kaldi.mfcc``: Table 3's "MFCC".

    The `kaldi_fbank` log energies of `num_mel_bins` filters go through the orthonormal DCT-II (`dct_matrix`);
    the first `num_ceps` coefficients are scaled by Kaldi's lifter 1 + (L/2) sin(pi i / L) (`cepstral_lifter` L,
    0 for none); `use_energy` replaces coefficient 0 with the frame's log energy. Returns float32 (frames, num_ceps).
    S3PRL then appends deltas of order 1 and 2 (`append_deltas`).

    Example:
        >>> mfcc(np.random.default_rng(0).normal(size=16_000)).shape
        (98, 13)
    """
    if not 1 <= num_ceps <= num_mel_bins:
        raise FeatureError(f"need 1 <= num_ceps <= num_mel_bins, got num_ceps={num_ceps}, num_mel_bins={num_mel_bins}")
    frames = _KaldiFrames(
        waveform, sampling_rate=sampling_rate, frame_length=frame_length, frame_shift=frame_shift,
        window_type=window_type, blackman_coeff=blackman_coeff, preemphasis_coefficient=preemphasis_coefficient,
        remove_dc_offset=remove_dc_offset, round_to_power_of_two=round_to_power_of_two, snip_edges=snip_edges,
        dither=dither, seed=seed,
    )
    log_mel = frames.filter_banks(num_mel_bins=num_mel_bins, low_freq=low_freq, high_freq=high_freq)
    cepstra = log_mel @ dct_matrix(num_mel_bins, num_ceps)
    if cepstral_lifter != 0.0:
        cepstra *= 1.0 + 0.5 * cepstral_lifter * np.sin(np.pi * np.arange(num_ceps) / cepstral_lifter)
    if use_energy:
        cepstra[:, 0] = frames.log_energy(raw=raw_energy, floor=energy_floor)
    return cepstra.astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Internals


def _waveform(waveform: np.ndarray) -> np.ndarray:
    """`waveform` as a finite 1-D float64 array, or a FeatureError saying what is wrong with it."""
    array = np.asarray(waveform, dtype=np.float64)
    if array.ndim != 1:
        raise FeatureError(
            f"waveform must be mono samples of shape (samples,), got shape {array.shape}; down-mix it first "
            "(speat_metric.audio.load_audio returns mono)"
        )
    if not np.all(np.isfinite(array)):
        raise FeatureError("waveform contains NaN or infinite samples")
    return array


def _feature_matrix(features: np.ndarray) -> np.ndarray:
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise FeatureError(f"features must have shape (frames, features), got shape {array.shape}")
    return array


def _centred_spectrogram(
    waveform: np.ndarray, *, n_fft: int, hop_length: int, win_length: int | None, window: str, center: bool,
    pad_mode: str, **options: object,
) -> np.ndarray:
    """``audio_utils.spectrogram`` (`options`: power, mel filters) framed as torch.stft: (frames, bins) float64."""
    samples = _waveform(waveform)
    win_length = n_fft if win_length is None else win_length
    if n_fft < 2 or hop_length < 1 or not 1 <= win_length <= n_fft:
        raise FeatureError(
            f"need n_fft >= 2, hop_length >= 1 and 1 <= win_length <= n_fft, got n_fft={n_fft}, "
            f"hop_length={hop_length}, win_length={win_length}"
        )
    if pad_mode not in _PAD_MODES:
        raise FeatureError(f"pad_mode {pad_mode!r} is not one of {', '.join(_PAD_MODES)}")
    if center and pad_mode == "reflect" and len(samples) <= n_fft // 2:
        raise FeatureError(
            f"waveform has {len(samples)} samples; reflect padding by n_fft // 2 = {n_fft // 2} needs more"
        )
    if len(samples) + (2 * (n_fft // 2) if center else 0) < n_fft:
        raise FeatureError(f"waveform has {len(samples)} samples, fewer than one frame of n_fft={n_fft}")
    offset = (n_fft - win_length) // 2  # torch.stft centres a short window in the FFT frame
    tapered = np.pad(window_function(window, win_length, periodic=True), (offset, n_fft - win_length - offset))
    return audio_utils.spectrogram(
        samples, tapered, frame_length=n_fft, hop_length=hop_length, center=center, pad_mode=_PAD_MODES[pad_mode],
        dtype=np.float64, **options,
    ).T


class _KaldiFrames:
    """One waveform framed as Kaldi frames it (`log_power_spectrogram`'s arguments), checked once."""

    def __init__(
        self, waveform: np.ndarray, *, sampling_rate: int, frame_length: float, frame_shift: float,
        window_type: str, blackman_coeff: float, preemphasis_coefficient: float, remove_dc_offset: bool,
        round_to_power_of_two: bool, snip_edges: bool, dither: float, seed: int | None,
    ) -> None:
        samples = _waveform(waveform)
        # The same float expressions as torchaudio, so that odd rates truncate to the same sizes.
        self.size = int(sampling_rate * frame_length * 0.001)
        self.shift = int(sampling_rate * frame_shift * 0.001)
        self.fft_size = 2 ** (self.size - 1).bit_length() if round_to_power_of_two else self.size
        if self.size < 2 or self.shift < 1 or self.fft_size % 2:
            raise FeatureError(
                f"frame_length={frame_length} ms and frame_shift={frame_shift} ms at {sampling_rate} Hz give "
                f"{self.size}-sample frames every {self.shift} samples; need frames of at least 2 samples, a "
                "shift of at least 1 and an even FFT size (use round_to_power_of_two)"
            )
        if not 0.0 <= preemphasis_coefficient <= 1.0:
            raise FeatureError(f"preemphasis_coefficient must be in [0, 1], got {preemphasis_coefficient}")
        if len(samples) < self.size:
            raise FeatureError(
                f"waveform has {len(samples)} samples, fewer than one {frame_length:g} ms frame ({self.size} "
                f"samples at {sampling_rate} Hz); use a longer clip or pad it"
            )
        if snip_edges:
            self.num_frames = 1 + (len(samples) - self.size) // self.shift
        else:  # Kaldi starts frame i at i * shift + shift // 2 - size // 2 and mirrors the edges (sample repeated)
            self.num_frames = (len(samples) + self.shift // 2) // self.shift
            left = self.size // 2 - self.shift // 2
            samples = np.pad(samples, (max(left, 0), self.size), mode="symmetric")[max(-left, 0) :]
        if dither != 0.0:  # per signal sample, not per frame sample as Kaldi: audio_utils' own dither is unseeded
            samples = samples + np.random.default_rng(seed).standard_normal(len(samples)) * dither
        self.samples = samples
        self.sampling_rate = sampling_rate
        self.window = window_function(window_type, self.size, periodic=False, blackman_coeff=blackman_coeff)
        self.preemphasis = preemphasis_coefficient
        self.remove_dc_offset = remove_dc_offset

    def spectrogram(self, **options: object) -> np.ndarray:
        """``audio_utils.spectrogram`` of the frames; `options` (power, mel filters, log) are its: (frames, bins)."""
        return audio_utils.spectrogram(
            self.samples, self.window, frame_length=self.size, hop_length=self.shift, fft_length=self.fft_size,
            center=False, preemphasis=self.preemphasis, remove_dc_offset=self.remove_dc_offset, dtype=np.float64,
            **options,
        ).T[: self.num_frames]

    def filter_banks(
        self, *, num_mel_bins: int, low_freq: float, high_freq: float, use_power: bool = True, use_log: bool = True
    ) -> np.ndarray:
        """Kaldi's mel filter energies, log(max(energy, float32 eps)) with `use_log`: (frames, num_mel_bins)."""
        if num_mel_bins <= 3:
            raise FeatureError(f"Kaldi mel banks need more than 3 bins, got num_mel_bins={num_mel_bins}")
        nyquist = self.sampling_rate / 2
        upper = high_freq + nyquist if high_freq <= 0.0 else high_freq
        if not 0.0 <= low_freq < upper <= nyquist:
            raise FeatureError(
                f"need 0 <= low_freq < high_freq <= Nyquist ({nyquist:g} Hz), got low_freq={low_freq}, "
                f"high_freq={high_freq} (resolved to {upper:g} Hz)"
            )
        bank = mel_filter_bank(
            num_frequency_bins=self.fft_size // 2 + 1, num_mel_filters=num_mel_bins, min_frequency=low_freq,
            max_frequency=upper, sampling_rate=self.sampling_rate, mel_scale="kaldi", triangularize_in_mel_space=True,
        )
        bank[-1] = 0.0  # Kaldi's filters cover the fft_size // 2 bins below Nyquist
        return self.spectrogram(power=2.0 if use_power else 1.0, mel_filters=bank,
                                mel_floor=FLOAT32_EPSILON if use_log else 0.0, log_mel="log" if use_log else None)

    def log_energy(self, *, raw: bool, floor: float) -> np.ndarray:
        """Kaldi's log frame energy, floored at log(`floor`) unless `floor` is 0: shape (frames,).

        `raw`: after DC removal, before pre-emphasis and window (Kaldi's default); else of the windowed frame.
        """
        if raw:
            frames = np.lib.stride_tricks.sliding_window_view(self.samples, self.size)[:: self.shift]
            frames = frames[: self.num_frames]
            if self.remove_dc_offset:
                frames = frames - frames.mean(axis=1, keepdims=True)
            energy = (frames**2).sum(axis=1)
        else:  # Parseval over the one-sided spectrum of the windowed frame (fft_size is even)
            power = self.spectrogram(power=2.0)
            energy = (2.0 * power.sum(axis=1) - power[:, 0] - power[:, -1]) / self.fft_size
        log_energy = np.log(np.maximum(energy, FLOAT32_EPSILON))
        return log_energy if floor == 0.0 else np.maximum(log_energy, math.log(floor))
