"""speat_metric.features against independent computations.

References: torch.stft (float64), transformers.audio_utils (window_function, mel_filter_bank, hertz_to_mel,
spectrogram), scipy.fft.dct, numpy's windows, and Kaldi's algorithms written out frame by frame with plain loops
below (feature-window.cc: ExtractWindow / ProcessWindow; mel-computations.cc: MelBanks; feature-mfcc.cc).
Tolerances are stated where they are used; most come from the float32 rounding of our outputs.
"""

import doctest
import logging
import math

import numpy as np
import pytest
import scipy.fft
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import audio_utils

from speat_metric import features
from speat_metric.features import (
    FeatureError,
    append_deltas,
    cmvn,
    dct_matrix,
    deltas,
    hz_to_mel,
    kaldi_fbank,
    log_mel_spectrogram,
    log_power_spectrogram,
    mel_filter_bank,
    mel_to_hz,
    mfcc,
    stft_magnitude,
    window_function,
)

EPS32 = float(np.finfo(np.float32).eps)
# Our outputs are float32; log-domain values of magnitude <= ~20 carry float32 rounding of ~2e-6.
LOG_TOLERANCE = dict(rtol=1e-6, atol=1e-5)


def speech_like(seconds=0.3, rate=16_000, seed=0):
    """An asymmetric test signal: a chirp, noise, a DC offset, a loud-quiet envelope and a near-silent stretch."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    chirp = np.sin(2 * np.pi * (150 * t + 2500 * t**2))
    envelope = 0.05 + 0.4 * np.abs(np.sin(2 * np.pi * 3 * t))
    signal = envelope * chirp + 0.02 * rng.standard_normal(len(t)) + 0.01
    signal[len(t) // 3 : len(t) // 3 + 800] *= 1e-3  # quiet frames hit Kaldi's energy floor
    return signal.astype(np.float32)


# ------------------------------------------------------------------------------------------------------------
# Kaldi, frame by frame


KALDI_WINDOWS = {  # feature-window.cc, with a = 2 pi / (N - 1)
    "povey": lambda j, n: (0.5 - 0.5 * math.cos(2 * math.pi * j / (n - 1))) ** 0.85,
    "hanning": lambda j, n: 0.5 - 0.5 * math.cos(2 * math.pi * j / (n - 1)),
    "hamming": lambda j, n: 0.54 - 0.46 * math.cos(2 * math.pi * j / (n - 1)),
    "rectangular": lambda j, n: 1.0,
}


def kaldi_frames_reference(waveform, *, rate=16_000, frame_ms=25.0, shift_ms=10.0, snip_edges=True,
                           preemphasis=0.97, energy_floor=1.0, window_type="povey"):
    """Kaldi's ExtractWindow + ProcessWindow with loops: (windowed, zero-padded frames, log energies, FFT size)."""
    samples = [float(v) for v in waveform]
    n = len(samples)
    window = int(rate * frame_ms * 0.001)
    shift = int(rate * shift_ms * 0.001)
    fft_size = 1
    while fft_size < window:
        fft_size *= 2
    if snip_edges:
        starts = [i * shift for i in range(1 + (n - window) // shift)]
    else:
        starts = [i * shift + shift // 2 - window // 2 for i in range((n + shift // 2) // shift)]
    frames, log_energies = [], []
    for start in starts:
        frame = []
        for s in range(window):
            index = start + s
            while index < 0 or index >= n:  # Kaldi mirrors, repeating the edge sample
                index = -index - 1 if index < 0 else 2 * n - 1 - index
            frame.append(samples[index])
        mean = sum(frame) / window
        frame = [v - mean for v in frame]
        energy = max(sum(v * v for v in frame), EPS32)
        log_energies.append(max(math.log(energy), math.log(energy_floor)))
        for j in range(window - 1, 0, -1):
            frame[j] -= preemphasis * frame[j - 1]
        frame[0] -= preemphasis * frame[0]
        frame = [v * KALDI_WINDOWS[window_type](j, window) for j, v in enumerate(frame)]
        frames.append(frame + [0.0] * (fft_size - window))
    return np.array(frames), np.array(log_energies), fft_size


def kaldi_mel_banks_reference(num_bins, fft_size, rate=16_000, low_freq=20.0, high_freq=0.0):
    """Kaldi's MelBanks with loops: weights[bin][k] over the fft_size // 2 bins below Nyquist."""
    def mel(frequency):
        return 1127.0 * math.log(1.0 + frequency / 700.0)

    high = high_freq if high_freq > 0 else rate / 2 + high_freq
    mel_low, mel_high = mel(low_freq), mel(high)
    delta = (mel_high - mel_low) / (num_bins + 1)
    weights = []
    for b in range(num_bins):
        left, centre, right = mel_low + b * delta, mel_low + (b + 1) * delta, mel_low + (b + 2) * delta
        row = []
        for k in range(fft_size // 2):
            m = mel(k * rate / fft_size)
            if left < m < right:
                row.append((m - left) / (centre - left) if m <= centre else (right - m) / (right - centre))
            else:
                row.append(0.0)
        weights.append(row)
    return weights


def kaldi_fbank_reference(waveform, *, num_bins=80, low_freq=20.0, high_freq=0.0, **framing):
    frames, log_energies, fft_size = kaldi_frames_reference(waveform, **framing)
    banks = kaldi_mel_banks_reference(num_bins, fft_size, low_freq=low_freq, high_freq=high_freq)
    result = []
    for frame in frames:
        power = np.abs(np.fft.rfft(frame)) ** 2
        result.append([math.log(max(sum(w * p for w, p in zip(row, power)), EPS32)) for row in banks])
    return np.array(result), log_energies


# ------------------------------------------------------------------------------------------------------------
# Building blocks


@pytest.mark.parametrize("name", ["hann", "hamming", "povey"])
@pytest.mark.parametrize("periodic", [True, False])
def test_windows_match_transformers(name, periodic):
    expected = audio_utils.window_function(401, name, periodic=periodic)
    np.testing.assert_allclose(window_function(name, 401, periodic=periodic), expected, rtol=0, atol=1e-12)


def test_windows_match_torch_and_numpy():
    np.testing.assert_allclose(window_function("hann", 400), torch.hann_window(400, dtype=torch.float64).numpy(),
                               atol=1e-12)
    np.testing.assert_allclose(window_function("hanning", 400, periodic=False), np.hanning(400), atol=1e-12)
    np.testing.assert_allclose(window_function("blackman", 400, periodic=False), np.blackman(400), atol=1e-12)
    np.testing.assert_array_equal(window_function("rectangular", 7), np.ones(7))


@pytest.mark.parametrize("scale", ["htk", "kaldi", "slaney"])
def test_mel_scales_match_transformers(scale):
    hertz = np.array([0.0, 20.0, 440.0, 999.0, 1000.0, 1001.0, 4000.0, 8000.0])
    np.testing.assert_allclose(hz_to_mel(hertz, mel_scale=scale), audio_utils.hertz_to_mel(hertz, scale), rtol=1e-12)
    mels = audio_utils.hertz_to_mel(hertz, scale)
    np.testing.assert_allclose(mel_to_hz(mels, mel_scale=scale), audio_utils.mel_to_hertz(mels, scale),
                               rtol=1e-12, atol=1e-9)


@settings(max_examples=50, deadline=None)
@given(frequency=st.floats(0.0, 24_000.0), scale=st.sampled_from(["htk", "kaldi", "slaney"]))
def test_mel_round_trip(frequency, scale):
    assert float(mel_to_hz(hz_to_mel(frequency, mel_scale=scale), mel_scale=scale)) == pytest.approx(
        frequency, rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("options", [
    dict(num_frequency_bins=201, num_mel_filters=80, min_frequency=0.0, max_frequency=8000.0, sampling_rate=16000),
    dict(num_frequency_bins=257, num_mel_filters=40, min_frequency=50.0, max_frequency=7600.0, sampling_rate=16000,
         mel_scale="slaney", norm="slaney"),
    dict(num_frequency_bins=257, num_mel_filters=80, min_frequency=20.0, max_frequency=8000.0, sampling_rate=16000,
         mel_scale="kaldi", triangularize_in_mel_space=True),
    dict(num_frequency_bins=513, num_mel_filters=128, min_frequency=0.0, max_frequency=11025.0,
         sampling_rate=22050, mel_scale="slaney"),
])
def test_mel_filter_bank_matches_transformers(options):
    ours = mel_filter_bank(**options)
    theirs = audio_utils.mel_filter_bank(**options)
    assert ours.shape == (options["num_frequency_bins"], options["num_mel_filters"])
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


def test_mel_filter_bank_warns_about_empty_filters(caplog):
    with caplog.at_level(logging.WARNING, logger="speat_metric.features"):
        bank = mel_filter_bank(num_frequency_bins=9, num_mel_filters=40, min_frequency=0.0, max_frequency=8000.0,
                               sampling_rate=16000)
    assert (bank.max(axis=0) == 0).any()
    assert "contain no frequency bin" in caplog.text


def test_dct_matrix_matches_scipy():
    x = np.random.default_rng(1).normal(size=(5, 23))
    np.testing.assert_allclose(x @ dct_matrix(23, 13), scipy.fft.dct(x, type=2, norm="ortho", axis=1)[:, :13],
                               atol=1e-12)


def deltas_reference(c, n):
    """HTK's regression formula with explicit clamping of frame indices."""
    frames = len(c)
    out = np.zeros_like(c, dtype=np.float64)
    denominator = 2 * sum(k * k for k in range(1, n + 1))
    for t in range(frames):
        for k in range(1, n + 1):
            out[t] += k * (c[min(t + k, frames - 1)] - c[max(t - k, 0)])
    return out / denominator


@pytest.mark.parametrize("win_length", [3, 5, 7, 6])
def test_deltas_match_regression_loop(win_length):
    c = np.random.default_rng(2).normal(size=(17, 4))
    np.testing.assert_allclose(deltas(c, win_length=win_length), deltas_reference(c, (win_length - 1) // 2),
                               rtol=1e-6, atol=1e-6)


def test_append_deltas_stacks_successive_deltas():
    c = np.random.default_rng(3).normal(size=(12, 13))
    stacked = append_deltas(c, order=2)
    first = deltas_reference(c, 2)
    second = deltas_reference(first, 2)
    assert stacked.shape == (12, 39) and stacked.dtype == np.float32
    np.testing.assert_allclose(stacked, np.concatenate([c, first, second], axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(append_deltas(c, order=0), c.astype(np.float32))


def test_cmvn_normalises_each_dimension():
    x = np.random.default_rng(4).normal(3.0, 5.0, size=(50, 6)) * np.arange(1, 7)
    normalised = cmvn(x)
    np.testing.assert_allclose(normalised.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(normalised.std(axis=0, ddof=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(normalised, (x - x.mean(0)) / x.std(0, ddof=1), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------------------
# STFT features against torch.stft


def torch_stft(waveform, n_fft, hop, win_length=None):
    win_length = win_length or n_fft
    spectrum = torch.stft(torch.from_numpy(waveform.astype(np.float64)), n_fft=n_fft, hop_length=hop,
                          win_length=win_length, window=torch.hann_window(win_length, dtype=torch.float64),
                          center=True, pad_mode="reflect", return_complex=True)
    return spectrum.T.numpy()


def test_stft_magnitude_matches_torch_stft():
    waveform = speech_like()
    ours = stft_magnitude(waveform)
    expected = np.abs(torch_stft(waveform, 512, 320))
    assert ours.shape == expected.shape == (1 + len(waveform) // 320, 257) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


def test_stft_magnitude_short_window_and_log_match_torch():
    waveform = speech_like(seed=5)
    expected = np.abs(torch_stft(waveform, 512, 160, win_length=400))
    np.testing.assert_allclose(stft_magnitude(waveform, hop_length=160, win_length=400), expected, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(stft_magnitude(waveform, hop_length=160, win_length=400, log=True),
                               np.log(np.maximum(expected, 1e-8)), **LOG_TOLERANCE)


@pytest.mark.parametrize("options", [
    {},  # S3PRL's "mel"
    dict(f_min=50.0, f_max=8000.0, log_offset=EPS32),  # M2D's front end
    dict(n_mels=40, mel_scale="slaney", norm="slaney", power=1.0, n_fft=512),
])
def test_log_mel_spectrogram_matches_torch_stft_and_transformers_filters(options):
    waveform = speech_like(seed=6)
    n_fft = options.get("n_fft", 400)
    power = np.abs(torch_stft(waveform, n_fft, 160)) ** options.get("power", 2.0)
    bank = audio_utils.mel_filter_bank(
        n_fft // 2 + 1, options.get("n_mels", 80), options.get("f_min", 0.0), options.get("f_max", 8000.0), 16000,
        norm=options.get("norm"), mel_scale=options.get("mel_scale", "htk"))
    expected = np.log(power @ bank + options.get("log_offset", 1e-10))
    ours = log_mel_spectrogram(waveform, **options)
    assert ours.shape == expected.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, **LOG_TOLERANCE)


def test_tone_peaks_in_its_frequency_bin():
    rate, frequency = 16_000, 1_000.0
    tone = np.sin(2 * np.pi * frequency * np.arange(rate) / rate).astype(np.float32)
    assert np.argmax(stft_magnitude(tone)[10]) == round(frequency * 512 / rate)
    assert np.argmax(log_power_spectrogram(tone)[10][1:]) + 1 == round(frequency * 512 / rate)
    mel_centres = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(8000.0), 82)[1:-1])
    assert np.argmax(log_mel_spectrogram(tone)[10]) == np.argmin(np.abs(mel_centres - frequency))


# ------------------------------------------------------------------------------------------------------------
# Kaldi features against the loops


@pytest.mark.parametrize("options", [
    {},
    dict(num_mel_bins=40, low_freq=50.0, high_freq=-400.0),
    dict(snip_edges=False),
    dict(frame_length=20.0, frame_shift=12.5, energy_floor=0.5),
    dict(window_type="hamming", preemphasis_coefficient=0.5),
    dict(window_type="hanning", preemphasis_coefficient=0.0),
    dict(window_type="rectangular"),
])
def test_kaldi_fbank_matches_frame_loop(options):
    waveform = speech_like(0.25)
    framing = {key: options[key] for key in ("snip_edges", "energy_floor", "window_type") if key in options}
    if "preemphasis_coefficient" in options:
        framing["preemphasis"] = options["preemphasis_coefficient"]
    framing.update(frame_ms=options.get("frame_length", 25.0), shift_ms=options.get("frame_shift", 10.0))
    expected, log_energies = kaldi_fbank_reference(
        waveform, num_bins=options.get("num_mel_bins", 80), low_freq=options.get("low_freq", 20.0),
        high_freq=options.get("high_freq", 0.0), **framing)
    ours = kaldi_fbank(waveform, **options)
    assert ours.shape == expected.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, **LOG_TOLERANCE)
    with_energy = kaldi_fbank(waveform, use_energy=True, **options)
    np.testing.assert_allclose(with_energy[:, 0], log_energies, **LOG_TOLERANCE)
    np.testing.assert_allclose(with_energy[:, 1:], ours)


def test_kaldi_fbank_floors_log_energy_on_quiet_frames():
    _, log_energies = kaldi_fbank_reference(speech_like(0.25))
    with_energy = kaldi_fbank(speech_like(0.25), use_energy=True)
    assert (log_energies == 0.0).any() and (with_energy[:, 0] == 0.0).any()  # energy_floor 1.0 -> log 0


def test_kaldi_fbank_matches_transformers_spectrogram():
    waveform = speech_like(0.25, seed=7)
    expected = audio_utils.spectrogram(
        waveform.astype(np.float64), audio_utils.window_function(400, "povey", periodic=False), frame_length=400,
        hop_length=160, fft_length=512, power=2.0, center=False, preemphasis=0.97, remove_dc_offset=True,
        mel_filters=audio_utils.mel_filter_bank(257, 80, 20.0, 8000.0, 16000, mel_scale="kaldi",
                                                triangularize_in_mel_space=True),
        mel_floor=EPS32, log_mel="log", dtype=np.float64).T
    np.testing.assert_allclose(kaldi_fbank(waveform), expected, **LOG_TOLERANCE)


def test_kaldi_fbank_magnitude_and_linear_options():
    waveform = speech_like(0.25, seed=8)
    frames, _, fft_size = kaldi_frames_reference(waveform)
    banks = np.array(kaldi_mel_banks_reference(80, fft_size))
    magnitude = np.abs(np.fft.rfft(frames, axis=1))[:, : fft_size // 2]
    np.testing.assert_allclose(kaldi_fbank(waveform, use_power=False, use_log_fbank=False), magnitude @ banks.T,
                               rtol=1e-5, atol=1e-7)


def test_log_power_spectrogram_matches_frame_loop():
    waveform = speech_like(0.25, seed=9)
    frames, log_energies, _ = kaldi_frames_reference(waveform)
    expected = np.log(np.maximum(np.abs(np.fft.rfft(frames, axis=1)) ** 2, EPS32))
    expected[:, 0] = log_energies
    ours = log_power_spectrogram(waveform)
    assert ours.shape == (1 + (len(waveform) - 400) // 160, 257) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, **LOG_TOLERANCE)


@pytest.mark.parametrize("options", [{}, dict(num_ceps=20, num_mel_bins=40, cepstral_lifter=0.0)])
def test_mfcc_matches_loop_fbank_and_scipy_dct(options):
    waveform = speech_like(0.25, seed=10)
    num_ceps, num_bins = options.get("num_ceps", 13), options.get("num_mel_bins", 23)
    lifter = options.get("cepstral_lifter", 22.0)
    log_mel, log_energies = kaldi_fbank_reference(waveform, num_bins=num_bins)
    cepstra = scipy.fft.dct(log_mel, type=2, norm="ortho", axis=1)[:, :num_ceps]
    if lifter:
        cepstra = cepstra * np.array([1 + lifter / 2 * math.sin(math.pi * i / lifter) for i in range(num_ceps)])
    ours = mfcc(waveform, **options)
    assert ours.shape == (len(log_mel), num_ceps) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, cepstra, rtol=1e-5, atol=1e-4)  # lifter gains up to 12 on float32 values
    energy_first = mfcc(waveform, use_energy=True, **options)
    np.testing.assert_allclose(energy_first[:, 0], log_energies, **LOG_TOLERANCE)
    np.testing.assert_allclose(energy_first[:, 1:], ours[:, 1:])


@pytest.mark.parametrize("samples", [400, 401, 559, 560, 561, 16_000])
def test_frame_counts(samples):
    waveform = np.random.default_rng(samples).normal(size=samples).astype(np.float32)
    assert len(kaldi_fbank(waveform)) == len(mfcc(waveform)) == 1 + (samples - 400) // 160
    assert len(kaldi_fbank(waveform, snip_edges=False)) == (samples + 80) // 160
    assert len(stft_magnitude(waveform)) == 1 + samples // 320
    assert len(log_mel_spectrogram(waveform)) == 1 + samples // 160


def test_dither_is_seeded_and_off_by_default():
    waveform = speech_like(0.1)
    np.testing.assert_array_equal(kaldi_fbank(waveform), kaldi_fbank(waveform))
    first = kaldi_fbank(waveform, dither=1e-3, seed=1)
    np.testing.assert_array_equal(first, kaldi_fbank(waveform, dither=1e-3, seed=1))
    assert not np.array_equal(first, kaldi_fbank(waveform, dither=1e-3, seed=2))
    assert not np.array_equal(first, kaldi_fbank(waveform))


# ------------------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("call, message", [
    (lambda: kaldi_fbank(np.zeros((2, 1000))), r"mono samples of shape \(samples,\), got shape \(2, 1000\)"),
    (lambda: mfcc(np.full(1000, np.nan)), "NaN or infinite"),
    (lambda: kaldi_fbank(np.zeros(399)), r"399 samples, fewer than one 25 ms frame \(400 samples at 16000 Hz\)"),
    (lambda: log_power_spectrogram(np.zeros(1000), frame_length=0.1), "frames of at least 2 samples"),
    (lambda: stft_magnitude(np.zeros(256)), r"256 samples; reflect padding by n_fft // 2 = 256 needs more"),
    (lambda: stft_magnitude(np.zeros(100), center=False), "fewer than one frame of n_fft=512"),
    (lambda: stft_magnitude(np.zeros(1000), win_length=600), "1 <= win_length <= n_fft"),
    (lambda: stft_magnitude(np.zeros(1000), pad_mode="mirror"), "pad_mode 'mirror' is not one of"),
    (lambda: stft_magnitude(np.zeros(1000), window="kaiser"), "window 'kaiser' is not one of"),
    (lambda: log_mel_spectrogram(np.zeros(1000), mel_scale="bark"), "mel_scale 'bark' is not one of"),
    (lambda: log_mel_spectrogram(np.zeros(1000), log_offset=0.0), "log_offset must be positive"),
    (lambda: log_mel_spectrogram(np.zeros(1000), f_max=9000.0), "max_frequency=9000.0"),
    (lambda: mfcc(np.zeros(1000), num_ceps=30), "num_ceps=30, num_mel_bins=23"),
    (lambda: kaldi_fbank(np.zeros(1000), num_mel_bins=3), "more than 3 bins, got num_mel_bins=3"),
    (lambda: kaldi_fbank(np.zeros(1000), high_freq=-8000.0), r"high_freq=-8000.0 \(resolved to 0 Hz\)"),
    (lambda: kaldi_fbank(np.zeros(1000), preemphasis_coefficient=1.5), "preemphasis_coefficient must be in"),
    (lambda: mel_filter_bank(num_frequency_bins=201, num_mel_filters=8, min_frequency=0.0, max_frequency=8000.0,
                             sampling_rate=16000, norm="area"), "norm must be None or 'slaney', got 'area'"),
    (lambda: dct_matrix(4, 5), "num_outputs=5, num_inputs=4"),
    (lambda: deltas(np.zeros((5, 2)), win_length=2), "win_length must be at least 3, got 2"),
    (lambda: deltas(np.zeros(5)), r"shape \(frames, features\), got shape \(5,\)"),
    (lambda: append_deltas(np.zeros((5, 2)), order=-1), "delta order must be 0 or more, got -1"),
    (lambda: cmvn(np.zeros((1, 3))), "at least 2 frames"),
])
def test_errors_name_the_value(call, message):
    with pytest.raises(FeatureError, match=message):
        call()


def test_feature_error_is_a_value_error():
    assert issubclass(FeatureError, ValueError)


def test_docstring_examples_run():
    result = doctest.testmod(features, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 10 and result.failed == 0
