"""Classical acoustic features in numpy: the baselines of Lin et al. (2024, Table 3) and model front ends.

Lin et al. computed their four classical baselines with the S3PRL toolkit. The defaults here follow S3PRL's
configurations of those upstreams (``s3prl/upstream/log_stft/stft_mag.yaml`` and ``s3prl/upstream/baseline/
{spectrogram,mel,mfcc}.yaml``) and the backends they call:

=================  ==========================  ==============================================================
Table 3 name       function                    S3PRL upstream and backend
=================  ==========================  ==============================================================
STFT               `stft_magnitude`            ``stft_mag``: torch.stft magnitude, n_fft 512, hop 320 (20 ms),
                                               periodic Hann 512, centred (reflect), no log; 257 dims
Spectrogram        `log_power_spectrogram`     ``spectrogram``: torchaudio.compliance.kaldi.spectrogram, 25 ms /
                                               10 ms, Povey window, 512-point FFT; 257 dims
Mel Spectrogram    `log_mel_spectrogram`       ``mel``: torchaudio Spectrogram + MelScale, n_fft 400, hop 160,
                                               80 HTK mel bins, power 2, log(x + 1e-10); 80 dims
MFCC               `mfcc`                      ``mfcc``: torchaudio.compliance.kaldi.mfcc, 13 cepstra from 23 mel
                                               bins, lifter 22; S3PRL appends deltas of order 1 and 2 (39 dims)
=================  ==========================  ==============================================================

S3PRL also normalises every utterance to zero mean and unit variance per dimension (CMVN, `cmvn`). These
functions return the features before deltas and CMVN; `append_deltas` and `cmvn` are separate steps, and
`speat_metric.adapters.classical` decides which to apply (see there why CMVN is off by default).

`kaldi_fbank` re-implements ``torchaudio.compliance.kaldi.fbank`` (Kaldi's ``compute-fbank-feats``) with its
defaults except ``num_mel_bins`` (80 here, as in S3PRL, MelHuBERT and most SSL front ends); it backs the
MelHuBERT front end. `log_mel_spectrogram` takes torchaudio ``MelSpectrogram``'s parameters (M2D's front end).

Frame convention: every feature function returns a float32 array of shape (frames, features). Kaldi-style
functions (`kaldi_fbank`, `mfcc`, `log_power_spectrogram`) with ``snip_edges=True`` emit
1 + (samples - window) // shift frames, frame i covering samples [i * shift, i * shift + window). Centred
STFT functions (`stft_magnitude`, `log_mel_spectrogram`) emit 1 + samples // hop frames, frame i centred on
sample i * hop. Computation is in float64; only the result is float32.
"""

from __future__ import annotations

import logging
import math

import numpy as np

logger = logging.getLogger(__name__)

FLOAT32_EPSILON = float(np.finfo(np.float32).eps)
"""Kaldi's floor before every log (``std::numeric_limits<float>::epsilon()``), kept by torchaudio."""

WINDOWS = ("hann", "hamming", "povey", "rectangular", "blackman")
MEL_SCALES = ("htk", "kaldi", "slaney")
_WINDOW_ALIASES = {"hanning": "hann"}  # Kaldi's and torchaudio.compliance's name for the Hann window
_PAD_MODES = {"reflect": "reflect", "constant": "constant", "replicate": "edge", "circular": "wrap"}


class FeatureError(ValueError):
    """A waveform or a feature parameter is unusable; the message names the value and how to fix it."""


# ---------------------------------------------------------------------------------------------------------------
# Building blocks


def window_function(name: str, length: int, *, periodic: bool = True, blackman_coeff: float = 0.42) -> np.ndarray:
    """A window of `length` samples.

    Args:
        name: ``"hann"`` (alias ``"hanning"``), ``"hamming"``, ``"povey"`` (Kaldi: Hann to the power 0.85),
            ``"rectangular"`` or ``"blackman"`` (Kaldi's generalised Blackman with `blackman_coeff`).
        length: number of samples.
        periodic: True for the periodic form used by torch.stft (period `length`); False for the symmetric form
            Kaldi uses (period `length` - 1).
        blackman_coeff: the constant term of the Blackman window.

    Returns:
        float64 array of shape (length,).

    Raises:
        FeatureError: unknown name or a length below 1.

    Example:
        >>> np.round(window_function("hann", 4), 6).tolist()
        [0.0, 0.5, 1.0, 0.5]
        >>> np.round(window_function("hann", 5, periodic=False), 6).tolist()
        [0.0, 0.5, 1.0, 0.5, 0.0]
    """
    name = _WINDOW_ALIASES.get(name, name)
    if name not in WINDOWS:
        raise FeatureError(f"window {name!r} is not one of {', '.join(WINDOWS)}")
    if length < 1:
        raise FeatureError(f"a window needs at least 1 sample, got length={length}")
    period = length if periodic else length - 1
    phase = 2.0 * np.pi * np.arange(length) / max(period, 1)
    if name == "rectangular":
        return np.ones(length)
    if name == "hamming":
        return 0.54 - 0.46 * np.cos(phase)
    if name == "blackman":
        return blackman_coeff - 0.5 * np.cos(phase) + (0.5 - blackman_coeff) * np.cos(2.0 * phase)
    hann = 0.5 - 0.5 * np.cos(phase)
    return hann**0.85 if name == "povey" else hann


def hz_to_mel(frequencies: np.ndarray | float, *, mel_scale: str = "htk") -> np.ndarray:
    """Convert Hz to mels.

    Args:
        frequencies: frequencies in Hz.
        mel_scale: ``"htk"`` (2595 log10(1 + f/700)), ``"kaldi"`` (1127 ln(1 + f/700), the same curve with
            Kaldi's rounded constant) or ``"slaney"`` (linear below 1 kHz, logarithmic above; librosa's default).

    Returns:
        float64 array of mels, the shape of `frequencies`.

    Example:
        >>> float(hz_to_mel(1000.0, mel_scale="slaney")), round(float(hz_to_mel(700.0)), 3)
        (15.0, 781.173)
    """
    frequencies = np.asarray(frequencies, dtype=np.float64)
    if mel_scale == "htk":
        return 2595.0 * np.log10(1.0 + frequencies / 700.0)
    if mel_scale == "kaldi":
        return 1127.0 * np.log(1.0 + frequencies / 700.0)
    if mel_scale == "slaney":
        linear = frequencies / (200.0 / 3.0)
        logarithmic = 15.0 + np.log(np.maximum(frequencies, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
        return np.where(frequencies >= 1000.0, logarithmic, linear)
    raise FeatureError(f"mel_scale {mel_scale!r} is not one of {', '.join(MEL_SCALES)}")


def mel_to_hz(mels: np.ndarray | float, *, mel_scale: str = "htk") -> np.ndarray:
    """Convert mels to Hz; the inverse of `hz_to_mel` for the same `mel_scale`.

    Example:
        >>> round(float(mel_to_hz(hz_to_mel(440.0, mel_scale="slaney"), mel_scale="slaney")), 6)
        440.0
    """
    mels = np.asarray(mels, dtype=np.float64)
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    if mel_scale == "kaldi":
        return 700.0 * (np.exp(mels / 1127.0) - 1.0)
    if mel_scale == "slaney":
        logarithmic = 1000.0 * np.exp((mels - 15.0) * (np.log(6.4) / 27.0))
        return np.where(mels >= 15.0, logarithmic, mels * (200.0 / 3.0))
    raise FeatureError(f"mel_scale {mel_scale!r} is not one of {', '.join(MEL_SCALES)}")


def mel_filter_bank(
    *,
    num_frequency_bins: int,
    num_mel_filters: int,
    min_frequency: float,
    max_frequency: float,
    sampling_rate: int,
    mel_scale: str = "htk",
    norm: str | None = None,
    triangularize_in_mel_space: bool = False,
) -> np.ndarray:
    """Triangular mel filters over the bins of a one-sided spectrum.

    The filters' corners are `num_mel_filters` + 2 points equally spaced in mels from `min_frequency` to
    `max_frequency`. By default the triangles are straight lines in Hz (torchaudio ``MelScale``, librosa,
    HTK); with `triangularize_in_mel_space` they are straight in mels, as in Kaldi.

    Args:
        num_frequency_bins: bins of the spectrum, n_fft // 2 + 1; bin k is at k * sampling_rate / n_fft Hz.
        num_mel_filters: number of filters.
        min_frequency: lower edge of the first filter in Hz.
        max_frequency: upper edge of the last filter in Hz, at most sampling_rate / 2.
        sampling_rate: rate of the analysed signal in Hz.
        mel_scale: ``"htk"``, ``"kaldi"`` or ``"slaney"`` (see `hz_to_mel`).
        norm: None (peak 1) or ``"slaney"`` (each filter scaled by 2 / its width in Hz: constant energy).
        triangularize_in_mel_space: draw the triangles in mels (Kaldi) rather than Hz.

    Returns:
        float64 array of shape (num_frequency_bins, num_mel_filters): ``power_spectrum @ bank`` gives mel energies
        with frames on the first axis.

    Raises:
        FeatureError: a count below 1, or frequencies outside [0, sampling_rate / 2] or in the wrong order.

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
    if norm not in (None, "slaney"):
        raise FeatureError(f"norm must be None or 'slaney', got {norm!r}")
    bin_frequencies = np.linspace(0.0, sampling_rate / 2, num_frequency_bins)
    corners_mel = np.linspace(
        hz_to_mel(min_frequency, mel_scale=mel_scale), hz_to_mel(max_frequency, mel_scale=mel_scale),
        num_mel_filters + 2,
    )
    corners_hz = mel_to_hz(corners_mel, mel_scale=mel_scale)
    if triangularize_in_mel_space:
        corners, grid = corners_mel, hz_to_mel(bin_frequencies, mel_scale=mel_scale)
    else:
        corners, grid = corners_hz, bin_frequencies
    lower, centre, upper = corners[:-2], corners[1:-1], corners[2:]
    rising = (grid[:, None] - lower) / (centre - lower)
    falling = (upper - grid[:, None]) / (upper - centre)
    bank = np.maximum(0.0, np.minimum(rising, falling))
    if norm == "slaney":
        bank *= 2.0 / (corners_hz[2:] - corners_hz[:-2])
    empty = np.flatnonzero(bank.max(axis=0) == 0.0)
    if len(empty):
        logger.warning(
            "mel filters %s contain no frequency bin; use fewer mel filters or a longer FFT", empty.tolist()
        )
    return bank


def dct_matrix(num_inputs: int, num_outputs: int) -> np.ndarray:
    """The orthonormal DCT-II as a matrix: ``x @ dct_matrix(n, k)`` gives the first k coefficients of x.

    This is ``scipy.fft.dct(x, type=2, norm="ortho")[:k]`` and Kaldi's MFCC transform (whose first row is
    sqrt(1/n)).

    Returns:
        float64 array of shape (num_inputs, num_outputs).

    Example:
        >>> np.round(np.ones(4) @ dct_matrix(4, 2), 6).tolist()
        [2.0, 0.0]
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
    """Regression deltas over time (HTK / torchaudio ``ComputeDeltas``), edges padded by repeating the end frames.

    d[t] = sum_{k=1..N} k (c[t+k] - c[t-k]) / (2 sum_{k=1..N} k^2), with N = (win_length - 1) // 2.

    Args:
        features: shape (frames, features).
        win_length: frames in the regression window, at least 3 (S3PRL uses 5).

    Returns:
        float32 array with the shape of `features`.

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

    Returns:
        float32 array of shape (frames, features * (order + 1)).

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

    As in S3PRL's baseline extracter. Note that every column of the result averages to zero over time.

    Raises:
        FeatureError: fewer than 2 frames (the standard deviation is undefined).

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
    """Magnitude of the short-time Fourier transform, |STFT|: Table 3's "STFT".

    Defaults are S3PRL's ``stft_mag`` upstream (``s3prl/upstream/log_stft/stft_mag.yaml``: n_fft 512, hop 320
    (20 ms at 16 kHz), win_length 512, Hann, center, reflect padding, no log), which calls ``torch.stft``.

    Args:
        waveform: mono samples, shape (samples,).
        n_fft: FFT size; the result has n_fft // 2 + 1 features.
        hop_length: samples between frames.
        win_length: window length (default `n_fft`); a shorter window is zero-padded on both sides to n_fft.
        window: a `window_function` name, periodic form.
        center: pad n_fft // 2 samples at both ends so that frame i is centred on sample i * hop_length.
        pad_mode: ``"reflect"``, ``"constant"``, ``"replicate"`` or ``"circular"`` (torch's names).
        log: return log(max(|STFT|, 1e-8)) as S3PRL's ``log`` option does.

    Returns:
        float32 array of shape (frames, n_fft // 2 + 1).

    Raises:
        FeatureError: a bad parameter, or a waveform too short for one frame.

    Example:
        >>> stft_magnitude(np.ones(16_000, dtype=np.float32)).shape
        (51, 257)
    """
    spectrum = np.abs(_centred_stft(waveform, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                                    window=window, center=center, pad_mode=pad_mode))
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
    """Log mel spectrogram, log(mel(|STFT|^power) + log_offset): Table 3's "Mel Spectrogram".

    Defaults are S3PRL's ``mel`` upstream (``s3prl/upstream/baseline/mel.yaml``: 25 ms window (n_fft 400),
    10 ms hop, 80 mel bins, log with eps 1e-10), which uses torchaudio ``Spectrogram`` (power 2, periodic Hann,
    centred, reflect) and ``MelScale`` (HTK scale, 0 Hz to Nyquist, no norm). The parameters are those of
    torchaudio ``MelSpectrogram``; M2D's front end, for instance, is ``f_min=50, f_max=8000,
    log_offset=torch.finfo(torch.float32).eps``.

    Args:
        waveform: mono samples at `sampling_rate`, shape (samples,).
        sampling_rate: rate of `waveform` in Hz.
        n_mels: mel bins (features).
        n_fft: FFT size.
        win_length: window length, default `n_fft`.
        hop_length: samples between frames.
        f_min: lowest frequency of the mel filters in Hz.
        f_max: highest frequency in Hz; None for sampling_rate / 2.
        window: a `window_function` name, periodic form.
        center: centre frame i on sample i * hop_length by padding n_fft // 2 at both ends.
        pad_mode: padding used with `center` (torch's names).
        power: exponent of the magnitude (2: power, 1: magnitude).
        mel_scale: ``"htk"`` or ``"slaney"`` (see `hz_to_mel`).
        norm: None or ``"slaney"`` filter normalisation (see `mel_filter_bank`).
        log_offset: added before the log, so that silence stays finite; must be positive.

    Returns:
        float32 array of shape (frames, n_mels).

    Raises:
        FeatureError: a bad parameter, or a waveform too short for one frame.

    Example:
        >>> log_mel_spectrogram(np.ones(16_000, dtype=np.float32)).shape
        (101, 80)
    """
    if not log_offset > 0:
        raise FeatureError(f"log_offset must be positive to keep log finite on silence, got {log_offset}")
    if not power > 0:
        raise FeatureError(f"power must be positive, got {power}")
    spectrum = np.abs(_centred_stft(waveform, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                                    window=window, center=center, pad_mode=pad_mode)) ** power
    bank = mel_filter_bank(
        num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels, min_frequency=f_min,
        max_frequency=sampling_rate / 2 if f_max is None else f_max, sampling_rate=sampling_rate,
        mel_scale=mel_scale, norm=norm,
    )
    return np.log(spectrum @ bank + log_offset).astype(np.float32)


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
    """Kaldi's spectrogram (``compute-spectrogram-feats``): log power spectrum per frame: Table 3's "Spectrogram".

    Equivalent to ``torchaudio.compliance.kaldi.spectrogram`` with its defaults, which S3PRL's ``spectrogram``
    upstream uses (``s3prl/upstream/baseline/spectrogram.yaml``: 25 ms frames, 10 ms shift). Each frame: optional
    dither, DC removal, pre-emphasis, Povey window, zero-padding to a power of two (512 at 16 kHz), then
    log(max(|FFT|^2, float32 eps)). As in Kaldi, feature 0 is replaced by the frame's log energy (floored at
    log(energy_floor); measured before pre-emphasis and windowing when `raw_energy`).

    Args:
        waveform: mono samples at `sampling_rate`, shape (samples,), at least one frame long.
        sampling_rate: rate in Hz.
        frame_length: frame length in milliseconds.
        frame_shift: frame shift in milliseconds.
        window_type: ``"povey"``, ``"hanning"``, ``"hamming"``, ``"rectangular"`` or ``"blackman"`` (symmetric).
        blackman_coeff: constant of the Blackman window.
        preemphasis_coefficient: x[n] - c x[n-1] inside each frame (x[-1] := x[0]); in [0, 1].
        remove_dc_offset: subtract each frame's mean.
        round_to_power_of_two: zero-pad frames to the next power of two before the FFT.
        snip_edges: only frames that fit entirely in the signal; otherwise Kaldi's mirrored edges, one frame per
            shift.
        dither: standard deviation of Gaussian noise added to every sample (Kaldi's default is 1 for 16-bit
            integer scale; 0 here, as in torchaudio, for deterministic features).
        seed: seed of the dither noise (ignored without dither).
        raw_energy: measure the energy before pre-emphasis and windowing.
        energy_floor: floor of the energy (absolute); 0 for none.

    Returns:
        float32 array of shape (frames, padded_window // 2 + 1), 257 features at 16 kHz.

    Raises:
        FeatureError: a bad parameter, or a waveform shorter than one frame.

    Example:
        >>> log_power_spectrogram(np.random.default_rng(0).normal(size=16_000)).shape
        (98, 257)
    """
    spectrum, log_energy = _kaldi_spectrum(
        waveform, sampling_rate=sampling_rate, frame_length=frame_length, frame_shift=frame_shift,
        window_type=window_type, blackman_coeff=blackman_coeff, preemphasis_coefficient=preemphasis_coefficient,
        remove_dc_offset=remove_dc_offset, round_to_power_of_two=round_to_power_of_two, snip_edges=snip_edges,
        dither=dither, seed=seed, raw_energy=raw_energy, energy_floor=energy_floor,
    )
    log_power = np.log(np.maximum(spectrum**2, FLOAT32_EPSILON))
    log_power[:, 0] = log_energy
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
    """Kaldi filter-bank features (``compute-fbank-feats``), a numpy twin of ``torchaudio.compliance.kaldi.fbank``.

    Same parameters (in milliseconds and Hz) and defaults as torchaudio, except `num_mel_bins` (80, not 23) and
    the sampling rate's name. Frames are prepared as in `log_power_spectrogram` (dither off by default, DC
    removal, pre-emphasis 0.97, Povey window, power-of-two FFT, snip edges); the power spectrum then goes
    through `num_mel_bins` triangular filters drawn in Kaldi's mel space between `low_freq` and `high_freq`
    (the Nyquist bin excluded), and log(max(energy, float32 eps)) is taken. VTLN warping is not supported.

    Args:
        waveform: mono samples at `sampling_rate`, shape (samples,), at least one frame long.
        num_mel_bins: mel filters (features), more than 3.
        sampling_rate: rate in Hz.
        frame_length: frame length in milliseconds.
        frame_shift: frame shift in milliseconds.
        low_freq: lower edge of the filters in Hz.
        high_freq: upper edge in Hz; zero or negative means Nyquist + high_freq.
        window_type, blackman_coeff, preemphasis_coefficient, remove_dc_offset, round_to_power_of_two,
        snip_edges, dither, seed, raw_energy, energy_floor: framing, as in `log_power_spectrogram`.
        use_energy: prepend the frame's log energy as feature 0.
        use_log_fbank: take the log of the filter energies.
        use_power: filter the power spectrum (True) or the magnitude spectrum (False).

    Returns:
        float32 array of shape (frames, num_mel_bins + use_energy).

    Raises:
        FeatureError: a bad parameter, or a waveform shorter than one frame.

    Example:
        >>> features = kaldi_fbank(np.random.default_rng(0).normal(size=16_000))
        >>> features.shape, features.dtype
        ((98, 80), dtype('float32'))
    """
    spectrum, log_energy = _kaldi_spectrum(
        waveform, sampling_rate=sampling_rate, frame_length=frame_length, frame_shift=frame_shift,
        window_type=window_type, blackman_coeff=blackman_coeff, preemphasis_coefficient=preemphasis_coefficient,
        remove_dc_offset=remove_dc_offset, round_to_power_of_two=round_to_power_of_two, snip_edges=snip_edges,
        dither=dither, seed=seed, raw_energy=raw_energy, energy_floor=energy_floor,
    )
    energies = _kaldi_mel_energies(spectrum**2 if use_power else spectrum, num_mel_bins=num_mel_bins,
                                   sampling_rate=sampling_rate, low_freq=low_freq, high_freq=high_freq)
    if use_log_fbank:
        energies = np.log(np.maximum(energies, FLOAT32_EPSILON))
    if use_energy:
        energies = np.concatenate([log_energy[:, None], energies], axis=1)
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
    """Kaldi MFCCs (``compute-mfcc-feats``), a numpy twin of ``torchaudio.compliance.kaldi.mfcc``: Table 3's "MFCC".

    Defaults are torchaudio's, which S3PRL's ``mfcc`` upstream uses (``s3prl/upstream/baseline/mfcc.yaml``:
    13 cepstra, 25 ms / 10 ms; S3PRL then appends deltas of order 1 and 2, see `append_deltas`). The log
    power of `num_mel_bins` Kaldi mel filters (as in `kaldi_fbank`) goes through the orthonormal DCT-II
    (`dct_matrix`); the first `num_ceps` coefficients are scaled by Kaldi's lifter
    1 + (L/2) sin(pi i / L); with `use_energy` coefficient 0 is replaced by the frame's log energy.

    Args:
        waveform: mono samples at `sampling_rate`, shape (samples,), at least one frame long.
        num_ceps: cepstral coefficients (features), at most `num_mel_bins`.
        num_mel_bins: mel filters, more than 3.
        cepstral_lifter: lifter constant L; 0 for none.
        use_energy: replace coefficient 0 with the log energy.
        sampling_rate, frame_length, frame_shift, low_freq, high_freq, window_type, blackman_coeff,
        preemphasis_coefficient, remove_dc_offset, round_to_power_of_two, snip_edges, dither, seed, raw_energy,
        energy_floor: as in `kaldi_fbank`.

    Returns:
        float32 array of shape (frames, num_ceps).

    Raises:
        FeatureError: a bad parameter, or a waveform shorter than one frame.

    Example:
        >>> mfcc(np.random.default_rng(0).normal(size=16_000)).shape
        (98, 13)
    """
    if not 1 <= num_ceps <= num_mel_bins:
        raise FeatureError(f"need 1 <= num_ceps <= num_mel_bins, got num_ceps={num_ceps}, num_mel_bins={num_mel_bins}")
    spectrum, log_energy = _kaldi_spectrum(
        waveform, sampling_rate=sampling_rate, frame_length=frame_length, frame_shift=frame_shift,
        window_type=window_type, blackman_coeff=blackman_coeff, preemphasis_coefficient=preemphasis_coefficient,
        remove_dc_offset=remove_dc_offset, round_to_power_of_two=round_to_power_of_two, snip_edges=snip_edges,
        dither=dither, seed=seed, raw_energy=raw_energy, energy_floor=energy_floor,
    )
    energies = _kaldi_mel_energies(spectrum**2, num_mel_bins=num_mel_bins, sampling_rate=sampling_rate,
                                   low_freq=low_freq, high_freq=high_freq)
    cepstra = np.log(np.maximum(energies, FLOAT32_EPSILON)) @ dct_matrix(num_mel_bins, num_ceps)
    if cepstral_lifter != 0.0:
        cepstra *= 1.0 + 0.5 * cepstral_lifter * np.sin(np.pi * np.arange(num_ceps) / cepstral_lifter)
    if use_energy:
        cepstra[:, 0] = log_energy
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


def _centred_stft(
    waveform: np.ndarray, *, n_fft: int, hop_length: int, win_length: int | None, window: str, center: bool,
    pad_mode: str,
) -> np.ndarray:
    """Complex one-sided STFT, shape (frames, n_fft // 2 + 1), with torch.stft's framing and window placement."""
    samples = _waveform(waveform)
    win_length = n_fft if win_length is None else win_length
    if n_fft < 2 or hop_length < 1 or not 1 <= win_length <= n_fft:
        raise FeatureError(
            f"need n_fft >= 2, hop_length >= 1 and 1 <= win_length <= n_fft, got n_fft={n_fft}, "
            f"hop_length={hop_length}, win_length={win_length}"
        )
    if pad_mode not in _PAD_MODES:
        raise FeatureError(f"pad_mode {pad_mode!r} is not one of {', '.join(_PAD_MODES)}")
    if center:
        if pad_mode == "reflect" and len(samples) <= n_fft // 2:
            raise FeatureError(
                f"waveform has {len(samples)} samples; reflect padding by n_fft // 2 = {n_fft // 2} needs more"
            )
        samples = np.pad(samples, n_fft // 2, mode=_PAD_MODES[pad_mode])
    if len(samples) < n_fft:
        raise FeatureError(f"waveform has {len(samples)} samples, fewer than one frame of n_fft={n_fft}")
    tapered = np.zeros(n_fft)
    offset = (n_fft - win_length) // 2
    tapered[offset : offset + win_length] = window_function(window, win_length, periodic=True)
    frames = np.lib.stride_tricks.sliding_window_view(samples, n_fft)[::hop_length]
    return np.fft.rfft(frames * tapered, axis=1)


def _kaldi_spectrum(
    waveform: np.ndarray, *, sampling_rate: int, frame_length: float, frame_shift: float, window_type: str,
    blackman_coeff: float, preemphasis_coefficient: float, remove_dc_offset: bool, round_to_power_of_two: bool,
    snip_edges: bool, dither: float, seed: int | None, raw_energy: bool, energy_floor: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Kaldi framing: (|FFT| of the prepared frames, shape (frames, padded // 2 + 1); log energy per frame)."""
    samples = _waveform(waveform)
    # The same float expressions as torchaudio, so that odd rates truncate to the same sizes.
    window_size = int(sampling_rate * frame_length * 0.001)
    window_shift = int(sampling_rate * frame_shift * 0.001)
    padded_size = 2 ** (window_size - 1).bit_length() if round_to_power_of_two else window_size
    if window_size < 2 or window_shift < 1 or padded_size % 2:
        raise FeatureError(
            f"frame_length={frame_length} ms and frame_shift={frame_shift} ms at {sampling_rate} Hz give "
            f"{window_size}-sample frames every {window_shift} samples; need frames of at least 2 samples, a "
            "shift of at least 1 and an even FFT size (use round_to_power_of_two)"
        )
    if not 0.0 <= preemphasis_coefficient <= 1.0:
        raise FeatureError(f"preemphasis_coefficient must be in [0, 1], got {preemphasis_coefficient}")
    if len(samples) < window_size:
        raise FeatureError(
            f"waveform has {len(samples)} samples, fewer than one {frame_length:g} ms frame ({window_size} "
            f"samples at {sampling_rate} Hz); use a longer clip or pad it"
        )
    if snip_edges:
        frames = np.lib.stride_tricks.sliding_window_view(samples, window_size)[::window_shift]
    else:
        # Kaldi mirrors the signal at both ends (repeating the edge sample) and centres frame i on i * shift.
        num_frames = (len(samples) + window_shift // 2) // window_shift
        pad = window_size // 2 - window_shift // 2
        mirrored = samples[::-1]
        extended = np.concatenate([mirrored[-pad:], samples, mirrored]) if pad > 0 else \
            np.concatenate([samples[-pad:], mirrored])
        frames = np.lib.stride_tricks.sliding_window_view(extended, window_size)[::window_shift][:num_frames]
    frames = np.array(frames, dtype=np.float64)
    if dither != 0.0:
        frames += np.random.default_rng(seed).standard_normal(frames.shape) * dither
    if remove_dc_offset:
        frames -= frames.mean(axis=1, keepdims=True)
    if raw_energy:
        log_energy = _log_energy(frames, energy_floor)
    if preemphasis_coefficient != 0.0:
        previous = np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
        frames -= preemphasis_coefficient * previous
    frames *= window_function(window_type, window_size, periodic=False, blackman_coeff=blackman_coeff)
    frames = np.pad(frames, ((0, 0), (0, padded_size - window_size)))
    if not raw_energy:
        log_energy = _log_energy(frames, energy_floor)
    return np.abs(np.fft.rfft(frames, axis=1)), log_energy


def _log_energy(frames: np.ndarray, energy_floor: float) -> np.ndarray:
    log_energy = np.log(np.maximum((frames**2).sum(axis=1), FLOAT32_EPSILON))
    return log_energy if energy_floor == 0.0 else np.maximum(log_energy, math.log(energy_floor))


def _kaldi_mel_energies(
    spectrum: np.ndarray, *, num_mel_bins: int, sampling_rate: int, low_freq: float, high_freq: float
) -> np.ndarray:
    """Kaldi's mel filters (triangles in mel space, Nyquist bin unused) applied to a (frames, bins) spectrum."""
    if num_mel_bins <= 3:
        raise FeatureError(f"Kaldi mel banks need more than 3 bins, got num_mel_bins={num_mel_bins}")
    nyquist = sampling_rate / 2
    upper = high_freq + nyquist if high_freq <= 0.0 else high_freq
    if not 0.0 <= low_freq < upper <= nyquist:
        raise FeatureError(
            f"need 0 <= low_freq < high_freq <= Nyquist ({nyquist:g} Hz), got low_freq={low_freq}, "
            f"high_freq={high_freq} (resolved to {upper:g} Hz)"
        )
    bank = mel_filter_bank(
        num_frequency_bins=spectrum.shape[1], num_mel_filters=num_mel_bins, min_frequency=low_freq,
        max_frequency=upper, sampling_rate=sampling_rate, mel_scale="kaldi", triangularize_in_mel_space=True,
    )
    bank[-1] = 0.0
    return spectrum @ bank
