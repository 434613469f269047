"""speat_metric.audio: decoding, down-mixing, resampling, integrity checks and silence trimming.

Every audio file here is written by the test with soundfile (WAV, FLAC and MP3) into a temporary directory.
"""

import doctest
import io
import logging

import numpy as np
import pytest
import soundfile

from speat_metric import audio
from speat_metric.audio import AudioDecodeError, load_audio, resample, trim_silent_edges


def tone(frequency, rate, seconds, amplitude=0.5):
    return (amplitude * np.sin(2 * np.pi * frequency * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def peak_frequency(waveform, rate):
    """Frequency of the largest bin of a Hann-windowed spectrum, in Hz (resolution rate / len)."""
    spectrum = np.abs(np.fft.rfft(waveform * np.hanning(len(waveform))))
    return np.argmax(spectrum) * rate / len(waveform)


def write(path, samples, rate, **options):
    soundfile.write(path, samples, rate, **options)
    return path


# ------------------------------------------------------------------------------------------------------------
# Resampling


@pytest.mark.parametrize("rate", [44_100, 8_000, 22_050, 48_000])
@pytest.mark.parametrize("frequency", [440.0, 1_234.0, 3_000.0])
def test_resampling_keeps_the_frequency(rate, frequency):
    resampled = resample(tone(frequency, rate, 1.0), rate, 16_000)
    assert resampled.dtype == np.float32 and len(resampled) == 16_000
    assert peak_frequency(resampled, 16_000) == pytest.approx(frequency, abs=1.0)  # 1 Hz bins over 1 s


def test_resampling_removes_frequencies_above_the_new_nyquist():
    """A 12 kHz tone cannot exist at 16 kHz; an anti-aliased resampler removes it instead of folding it to 4 kHz."""
    resampled = resample(tone(12_000.0, 44_100, 1.0), 44_100, 16_000)
    assert np.sqrt(np.mean(resampled[1000:-1000] ** 2)) < 0.5 / np.sqrt(2) * 10 ** (-60 / 20)  # < -60 dB


def test_resampling_lengths_and_identity():
    assert len(resample(np.zeros(12_345), 44_100, 16_000)) == round(12_345 * 16_000 / 44_100)
    same = resample(np.arange(10, dtype=np.float64), 16_000, 16_000)
    assert same.dtype == np.float32 and same.tolist() == list(range(10))
    assert resample(np.zeros((441, 2)), 44_100, 16_000).shape == (160, 2)


@pytest.mark.parametrize("call, message", [
    (lambda: resample(np.zeros(10), 0, 16_000), "orig_rate must be a positive integer .*, got 0"),
    (lambda: resample(np.zeros(10), 16_000, 16_000.5), "target_rate must be a positive integer .*, got 16000.5"),
    (lambda: resample(np.zeros((2, 2, 2)), 8_000, 16_000), r"got shape \(2, 2, 2\)"),
])
def test_resample_rejects_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ------------------------------------------------------------------------------------------------------------
# Decoding


@pytest.mark.parametrize("container, subtype", [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", "PCM_24")])
@pytest.mark.parametrize("rate", [16_000, 44_100, 8_000])
def test_lossless_files_decode_to_the_right_length_and_rate(tmp_path, container, subtype, rate):
    samples = tone(700.0, rate, 1.5)
    path = write(tmp_path / f"clip.{container.lower()}", samples, rate, format=container, subtype=subtype)
    waveform = load_audio(path)
    assert waveform.dtype == np.float32 and waveform.ndim == 1
    assert len(waveform) == round(len(samples) * 16_000 / rate)
    assert peak_frequency(waveform, 16_000) == pytest.approx(700.0, abs=1.0)
    if rate == 16_000:  # no resampling: the samples themselves, to the format's precision
        np.testing.assert_allclose(waveform, samples, atol=2 / 2**15)


@pytest.mark.parametrize("rate", [16_000, 44_100, 22_050])
def test_mp3_decodes_to_the_right_length_and_rate(tmp_path, rate):
    samples = tone(500.0, rate, 2.0)
    path = write(tmp_path / "clip.mp3", samples, rate, format="MP3")
    waveform = load_audio(path, sampling_rate=16_000)
    # MP3 decoders may keep or drop the encoder's delay and padding: allow one MPEG frame (1,152 samples).
    assert abs(len(waveform) - 32_000) <= 1_152 * 16_000 / rate
    assert peak_frequency(waveform, 16_000) == pytest.approx(500.0, abs=1.0)


def test_other_target_rates(tmp_path):
    path = write(tmp_path / "clip.wav", tone(440.0, 16_000, 1.0), 16_000)
    waveform = load_audio(path, sampling_rate=24_000)
    assert len(waveform) == 24_000 and peak_frequency(waveform, 24_000) == pytest.approx(440.0, abs=1.0)


def test_stereo_is_down_mixed_to_the_mean_of_its_channels(tmp_path):
    left, right = tone(300.0, 16_000, 0.5), tone(2_000.0, 16_000, 0.5, amplitude=0.25)
    path = write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 16_000, subtype="PCM_16")
    np.testing.assert_allclose(load_audio(path), (left + right) / 2, atol=1 / 2**15)


def test_bytes_decode_like_the_file(tmp_path):
    path = write(tmp_path / "clip.flac", tone(440.0, 22_050, 0.5), 22_050)
    np.testing.assert_array_equal(load_audio(path.read_bytes(), name="clip"), load_audio(path))


def test_float_samples_beyond_full_scale_are_clipped_with_a_warning(tmp_path, caplog):
    samples = np.array([0.0, 1.5, -2.0, 0.25] * 400, dtype=np.float32)
    path = write(tmp_path / "hot.wav", samples, 16_000, subtype="FLOAT")
    with caplog.at_level(logging.WARNING, logger="speat_metric.audio"):
        waveform = load_audio(path)
    np.testing.assert_array_equal(waveform, np.clip(samples, -1, 1))
    assert "hot.wav" in caplog.text and "clipping" in caplog.text


# ------------------------------------------------------------------------------------------------------------
# Broken files


def encoded(container, seconds=2.0, rate=16_000):
    buffer = io.BytesIO()
    soundfile.write(buffer, tone(440.0, rate, seconds), rate, format=container)
    return buffer.getvalue()


@pytest.mark.parametrize("container", ["WAV", "FLAC", "MP3"])
@pytest.mark.parametrize("kept", [0.3, 0.5, 0.77, 0.95])
def test_a_truncated_file_gives_the_error_naming_it(tmp_path, container, kept):
    data = encoded(container)
    path = tmp_path / f"speaker42.{container.lower()}"
    path.write_bytes(data[: int(len(data) * kept)])
    with pytest.raises(AudioDecodeError, match=r"speaker42\.\w+: (the file is truncated|libsndfile cannot decode)"):
        load_audio(path)


def test_truncated_wav_says_how_much_is_missing(tmp_path):
    data = encoded("WAV")
    path = tmp_path / "cut.wav"
    path.write_bytes(data[:10_044])
    with pytest.raises(AudioDecodeError, match=r"cut\.wav: the file is truncated: its data chunk declares 64000 "
                                               r"bytes of samples but only 10000 are present; replace it"):
        load_audio(path)


def test_truncated_mp3_is_named_by_the_name_given_for_bytes():
    data = encoded("MP3")
    with pytest.raises(AudioDecodeError, match=r"AC1T01_SCR: the file is truncated: .*MPEG frame"):
        load_audio(data[: len(data) // 2], name="AC1T01_SCR")


def test_mp3_cut_between_frames_is_caught_by_its_info_header():
    """A cut on a frame boundary leaves only whole frames; the Info tag's frame count still gives it away."""
    buffer = io.BytesIO()
    soundfile.write(buffer, tone(440.0, 16_000, 2.0), 16_000, format="MP3", bitrate_mode="CONSTANT",
                    compression_level=0.5)
    data = buffer.getvalue()
    # Constant bit rate at 16 kHz: equal frames; find their length as the first period of the sync bytes.
    frame = next(length for length in range(48, 2_000)
                 if all(data[k * length : k * length + 2] == data[:2] for k in range(1, 12)))
    assert load_audio(data).shape == (32_000,)
    with pytest.raises(AudioDecodeError, match=r"cbr: the file is truncated: its Xing/Info header declares "
                                               r"\d+ MPEG frames but only 20 are present"):
        load_audio(data[: 20 * frame], name="cbr")


def test_mp3_tags_are_not_mistaken_for_truncation():
    """An ID3v2 tag in front (size in 7-bit bytes) and an ID3v1 tag behind are common in downloaded MP3s."""
    data = encoded("MP3")
    id3v2 = b"ID3\x03\x00\x00" + bytes([0, 0, 1, 0]) + bytes(128)  # 128 bytes of padding: size 0x80 -> 1, 0
    id3v1 = b"TAG" + bytes(125)
    assert len(load_audio(id3v2 + data + id3v1)) == len(load_audio(data))
    with pytest.raises(AudioDecodeError, match="tagged: the file is truncated"):
        load_audio(id3v2 + data[: len(data) * 2 // 3], name="tagged")


def test_a_header_only_wav_is_truncated(tmp_path):
    path = tmp_path / "header.wav"
    path.write_bytes(encoded("WAV")[:44])
    with pytest.raises(AudioDecodeError, match=r"header\.wav: the file is truncated"):
        load_audio(path)


def test_an_empty_file_gives_the_error_naming_it(tmp_path):
    path = tmp_path / "empty.mp3"
    path.write_bytes(b"")
    with pytest.raises(AudioDecodeError, match=r"empty\.mp3: the file is empty \(0 bytes\)"):
        load_audio(path)


def test_a_wav_without_samples_is_refused(tmp_path):
    path = write(tmp_path / "silent.wav", np.zeros(0, dtype=np.float32), 16_000)
    with pytest.raises(AudioDecodeError, match=r"silent\.wav: the file contains no audio samples"):
        load_audio(path)


def test_not_audio_is_refused(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("speaker, age\n" * 50)
    with pytest.raises(AudioDecodeError, match=r"notes\.wav: libsndfile cannot decode it \(Format not recognised\)"):
        load_audio(path)


def test_non_finite_samples_are_refused(tmp_path):
    path = write(tmp_path / "nan.wav", np.array([0.0, np.nan, 0.1] * 10, dtype=np.float32), 16_000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match=r"nan\.wav: the file contains NaN or infinite samples"):
        load_audio(path)


def test_anonymous_bytes_are_labelled():
    with pytest.raises(AudioDecodeError, match=r"<audio bytes>: the file is empty"):
        load_audio(b"")


def test_missing_file_and_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere\.wav: no such audio file"):
        load_audio(tmp_path / "nowhere.wav")
    with pytest.raises(ValueError, match="sampling_rate must be a positive integer .*, got -16000"):
        load_audio(b"RIFF", sampling_rate=-16_000)
    with pytest.raises(TypeError, match="source must be a path or bytes, got int"):
        load_audio(42)


def test_decode_error_is_a_value_error():
    assert issubclass(AudioDecodeError, ValueError)


# ------------------------------------------------------------------------------------------------------------
# Trimming


def speech_with_silent_edges(rate=16_000, level=0.3, seed=0):
    """0.5 s near-silence, 1 s of syllable-like noise bursts with short pauses, 0.3 s near-silence."""
    rng = np.random.default_rng(seed)
    lead, speech, tail = int(0.5 * rate), int(1.0 * rate), int(0.3 * rate)
    t = np.arange(speech) / rate
    # Four syllables separated by 100 ms, 100 ms and 50 ms pauses; the first starts and the last ends the speech.
    syllables = sum(((t >= a) & (t < b)).astype(float) for a, b in [(0, 0.2), (0.3, 0.5), (0.6, 0.8), (0.85, 1.0)])
    voiced = level * syllables * (np.sin(2 * np.pi * 180 * t) + 0.3 * rng.standard_normal(speech))
    noise = 10 ** (-70 / 20) * level * rng.standard_normal(lead + speech + tail)
    signal = noise.copy()
    signal[lead : lead + speech] += voiced
    return signal.astype(np.float32), lead, lead + speech


def test_trimming_removes_silent_edges_and_keeps_the_speech():
    signal, start, end = speech_with_silent_edges()
    trimmed = trim_silent_edges(signal, top_db=40.0)
    offset = int(np.flatnonzero(signal == trimmed[0])[0])
    np.testing.assert_array_equal(trimmed, signal[offset : offset + len(trimmed)])
    frame = 400
    assert start - frame <= offset <= start  # at most one frame of the leading silence kept
    assert end <= offset + len(trimmed) <= end + frame  # and at most one frame of the trailing silence
    assert len(trimmed) < 0.8 * len(signal)


def test_trimming_does_not_depend_on_the_level():
    quiet, _, _ = speech_with_silent_edges(level=0.003)
    loud, _, _ = speech_with_silent_edges(level=0.6)
    assert len(trim_silent_edges(quiet)) == len(trim_silent_edges(loud))


def test_trimming_keeps_all_of_a_clip_without_silence_and_warns_on_digital_silence(caplog):
    dense = tone(300.0, 16_000, 0.5)
    np.testing.assert_array_equal(trim_silent_edges(dense), dense)
    zeros = np.zeros(8_000, dtype=np.float32)
    with caplog.at_level(logging.WARNING, logger="speat_metric.audio"):
        assert len(trim_silent_edges(zeros)) == 8_000
    assert "digital silence" in caplog.text


def test_load_audio_trims_only_when_asked(tmp_path):
    signal, start, end = speech_with_silent_edges()
    path = write(tmp_path / "utterance.flac", signal, 16_000, subtype="PCM_24")
    assert len(load_audio(path)) == len(signal)
    trimmed = load_audio(path, trim_silence=True)
    assert end - start <= len(trimmed) <= end - start + 2 * 400
    assert len(load_audio(path, trim_silence=True, top_db=80.0)) > len(trimmed)  # -70 dB noise now counts


@pytest.mark.parametrize("call, message", [
    (lambda: trim_silent_edges(np.zeros((10, 2))), r"mono samples of shape \(samples,\), got shape \(10, 2\)"),
    (lambda: trim_silent_edges(np.zeros(10), top_db=0.0), "top_db must be positive, got 0.0"),
    (lambda: trim_silent_edges(np.zeros(10), hop_ms=-1), "hop_ms must be positive, got -1"),
])
def test_trimming_rejects_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_docstring_examples_run():
    result = doctest.testmod(audio)
    assert result.attempted >= 3 and result.failed == 0


# ------------------------------------------------------------------------------------------------------------
# The SpEAT reference's resampler (pydub's audioop.ratecv), checked against CPython's audioop where it still exists


def _stdlib_audioop():
    """CPython's audioop (removed from the standard library in Python 3.13): the independent reference."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:
            pytest.skip("this Python has no audioop (removed in 3.13): ratecv is checked against it on 3.12 and older")
    return audioop


def _pack(samples, width):
    """Interleaved little-endian signed integers of `width` bytes, as audioop reads them."""
    flat = np.asarray(samples, dtype=np.int64).reshape(-1)
    return (flat & (2 ** (8 * width) - 1)).astype("<u4").view(np.uint8).reshape(-1, 4)[:, :width].tobytes()


def _unpack(data, width, channels):
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, width)
    values = sum(raw[:, byte].astype(np.int64) << (8 * byte) for byte in range(width))
    values = np.where(values >= 2 ** (8 * width - 1), values - 2 ** (8 * width), values)
    return values.reshape(-1, channels)


def chirp(rate, seconds, channels):
    """A full-scale-ish 100 Hz -> 12 kHz chirp (aliasing and negative samples exercise every branch), per channel
    a different phase, as floats in [-1, 1)."""
    time = np.arange(int(rate * seconds)) / rate
    phase = 2 * np.pi * (100 * time + (12_000 - 100) / (2 * seconds) * time ** 2)
    return np.stack([0.97 * np.sin(phase + channel) for channel in range(channels)], axis=1)


@pytest.mark.parametrize("width", [1, 2, 3, 4])
@pytest.mark.parametrize("inrate,outrate", [(44_100, 16_000), (22_050, 16_000), (48_000, 16_000), (8_000, 16_000),
                                            (11_025, 16_000), (16_000, 16_000), (44_101, 16_000)])
def test_ratecv_equals_audioop_sample_for_sample_on_a_chirp(width, inrate, outrate):
    audioop = _stdlib_audioop()
    for channels in (1, 2):
        full_scale = 2 ** (8 * width - 1)
        samples = np.clip(np.rint(chirp(inrate, 0.25, channels) * full_scale), -full_scale, full_scale - 1)
        expected, _ = audioop.ratecv(_pack(samples, width), width, channels, inrate, outrate, None)
        ours = audio.ratecv(samples.astype(np.int64), width, inrate, outrate)
        np.testing.assert_array_equal(ours, _unpack(expected, width, channels))
        if channels == 1:
            np.testing.assert_array_equal(audio.ratecv(samples[:, 0], width, inrate, outrate), ours[:, 0])


def test_ratecv_of_nothing_and_bad_arguments():
    assert audio.ratecv(np.zeros((0, 2), dtype=np.int64), 2, 44_100, 16_000).shape == (0, 2)
    with pytest.raises(ValueError, match=r"width must be 1, 2, 3 or 4 bytes per sample, got 5"):
        audio.ratecv(np.zeros(4), 5, 44_100, 16_000)
    with pytest.raises(ValueError, match=r"outrate must be a positive integer"):
        audio.ratecv(np.zeros(4), 2, 44_100, 0)
    with pytest.raises(ValueError, match=r"resampler must be one of soxr, ratecv, got 'sinc'"):
        load_audio(b"RIFF", resampler="sinc")


@pytest.mark.parametrize("subtype,width", [("PCM_16", 2), ("PCM_24", 3)])
def test_ratecv_loading_is_pydubs_conversion_then_fairseqs_read(tmp_path, subtype, width):
    """pydub: WAV integers -> audioop.ratecv(data, width, 2, 44100, 16000, None) -> WAV; fairseq: soundfile float,
    channels averaged. Computed here with the real audioop on the integers soundfile reads."""
    audioop = _stdlib_audioop()
    path = write(tmp_path / "stereo.wav", chirp(44_100, 0.5, 2) * 0.8, 44_100, subtype=subtype)
    integers = soundfile.read(path, dtype="int32")[0].astype(np.int64) >> (32 - 8 * width)
    converted, _ = audioop.ratecv(_pack(integers, width), width, 2, 44_100, 16_000, None)
    expected = (_unpack(converted, width, 2) / 2 ** (8 * width - 1)).astype(np.float32).mean(axis=1)
    ours = load_audio(path, resampler="ratecv")
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, expected)
    # soxr filters what folds back; ratecv does not, so the two differ audibly on a chirp up to 12 kHz
    assert np.abs(load_audio(path) - ours[: len(load_audio(path))]).max() > 0.01


def test_ratecv_loading_quantises_mp3_to_16_bits(tmp_path):
    """pydub decodes MP3 through ffmpeg as pcm_s16le, so even at 16 kHz the samples are 16-bit values."""
    path = write(tmp_path / "tone.mp3", tone(440.0, 16_000, 0.5), 16_000)
    float_samples = load_audio(path)
    quantised = load_audio(path, resampler="ratecv")
    np.testing.assert_array_equal(quantised * 32768, np.rint(quantised * 32768))
    np.testing.assert_allclose(quantised, float_samples, atol=0.5 / 32768 + 1e-7)
