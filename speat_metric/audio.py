"""Audio in: decode WAV, FLAC or MP3 to a mono float32 waveform at the rate the models expect.

`load_audio` is the only way stimuli enter the pipeline. It decodes with soundfile, down-mixes to mono by averaging
the channels, resamples with soxr and returns float32 samples in [-1, 1]. A file that cannot be decoded completely
raises `AudioDecodeError` naming the file: libsndfile quietly decodes what is left of a truncated file, so the
containers are checked first (`check_audio`). Trimming silence is available but off: neither SpEAT study trimmed.

``resampler="ratecv"`` takes instead the path by which the SpEAT reference code made its 16 kHz WAVs (pydub, CPython's
``audioop.ratecv``); `ratecv` is our own implementation of that algorithm, since ``audioop`` left the standard
library in Python 3.13.

Details: docs/stimuli.md, "Decoding the audio".
"""

from __future__ import annotations

import io
import logging
import math
import os
from pathlib import Path

import numpy as np
import soundfile
import soxr

logger = logging.getLogger(__name__)

DEFAULT_SAMPLING_RATE = 16_000
"""The rate every model adapter takes (`speat_metric.adapters.base.SAMPLING_RATE`)."""

_FIX_HINT = "replace it with a valid WAV, FLAC or MP3 file"

RESAMPLERS = ("soxr", "ratecv")
"""``soxr``: high-quality anti-aliased resampling of float samples (the default). ``ratecv``: the SpEAT reference's
pydub path (integer PCM, ``audioop.ratecv``, 16-bit WAV for MP3s); see `reference_resample`."""

_PCM_WIDTHS = {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 4}
"""Bytes per sample pydub works at, by libsndfile subtype; any other subtype (MP3, ...) is 16-bit (docs/features.md)."""


class AudioDecodeError(ValueError):
    """An audio file or buffer is empty, corrupt or truncated; the message names it and says what was wrong.

    `problem` says what was wrong without the file's name (``"the file is empty (0 bytes)"``), for a list of reasons.
    """

    def __init__(self, message: str, problem: str | None = None) -> None:
        super().__init__(message)
        self.problem = problem or message


def _unreadable(label: str, problem: str) -> AudioDecodeError:
    return AudioDecodeError(f"{label}: {problem}; {_FIX_HINT}", problem)


def load_audio(
    source: str | os.PathLike | bytes,
    *,
    sampling_rate: int = DEFAULT_SAMPLING_RATE,
    trim_silence: bool = False,
    top_db: float = 40.0,
    name: str | None = None,
    resampler: str = "soxr",
) -> np.ndarray:
    """Decode an audio file (any format libsndfile reads) or its bytes to a mono float32 waveform at `sampling_rate`.

    `resampler` is ``"soxr"`` (channels averaged, then soxr "HQ", anti-aliased) or ``"ratecv"`` (the SpEAT
    reference's pydub path, `reference_resample`, used by the ``speat2023`` and ``s3prl`` profiles).
    `trim_silence` applies `trim_silent_edges` with `top_db` (off: the SpEAT studies did not trim). `name` labels
    bytes in error messages, e.g. the stimulus id. Samples beyond full scale (float WAVs) are clipped to [-1, 1],
    with a warning in the log.

    Raises:
        FileNotFoundError: the path does not exist.
        AudioDecodeError: the file is empty, not audio, corrupt, truncated, has no samples or non-finite samples.
        ValueError: `sampling_rate` is not a positive integer, or `resampler` is unknown.

    Example:
        >>> import io, soundfile
        >>> stereo = np.stack([np.full(441, 0.5), np.full(441, -0.25)], axis=1)
        >>> buffer = io.BytesIO(); soundfile.write(buffer, stereo, 44_100, format="WAV", subtype="FLOAT")
        >>> waveform = load_audio(buffer.getvalue(), name="example")
        >>> waveform.dtype, waveform.shape, round(float(waveform[80]), 3)
        (dtype('float32'), (160,), 0.125)
    """
    _check_rate(sampling_rate, "sampling_rate")
    if resampler not in RESAMPLERS:
        raise ValueError(f"resampler must be one of {', '.join(RESAMPLERS)}, got {resampler!r}")
    label, data = _read_source(source, name)
    if resampler == "ratecv":  # float64 holds every 8- to 32-bit integer sample exactly
        samples, file_rate, subtype = _decode(data, label, dtype="float64")
        waveform = reference_resample(samples, file_rate, sampling_rate, width=_PCM_WIDTHS.get(subtype, 2))
    else:
        samples, file_rate, _ = _decode(data, label)
        mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
        waveform = resample(mono, file_rate, sampling_rate)
    peak = float(np.max(np.abs(waveform)))
    if peak > 1.0:
        logger.warning("%s: samples reach %.3f, beyond full scale; clipping to [-1, 1]", label, peak)
        waveform = np.clip(waveform, -1.0, 1.0)
    if trim_silence:
        waveform = trim_silent_edges(waveform, sampling_rate=sampling_rate, top_db=top_db)
    return waveform


def resample(waveform: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample (samples,) or (samples, channels) with soxr's high-quality, anti-aliased polyphase filter.

    Returns float32 round(samples * target_rate / orig_rate) samples (the input, as float32, when the rates are equal).

    Example:
        >>> resample(np.zeros(44_100, dtype=np.float32), 44_100, 16_000).shape
        (16000,)
    """
    _check_rate(orig_rate, "orig_rate")
    _check_rate(target_rate, "target_rate")
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim not in (1, 2):
        raise ValueError(
            f"waveform must have shape (samples,) or (samples, channels), got shape {waveform.shape}"
        )
    if orig_rate == target_rate:
        return waveform
    return np.asarray(soxr.resample(waveform, orig_rate, target_rate, quality="HQ"), dtype=np.float32)


def reference_resample(samples: np.ndarray, orig_rate: int, target_rate: int, *, width: int = 2) -> np.ndarray:
    """The SpEAT reference's resampling: integer PCM of `width` bytes, `ratecv` per channel, channels averaged.

    pydub's ``set_frame_rate`` and fairseq's ``read_audio`` (docs/features.md); no anti-alias filter. `samples` are
    floats in [-1, 1], (frames, channels) or (frames,); `width` is the file's own for integer PCM, 2 for MP3.
    Returns mono float32 samples, ``len`` of them when the rates are equal (pydub then leaves them alone).

    Example:
        >>> reference_resample(np.array([0.0, 0.5, -0.5, 0.25]), 3, 2)  # output frames at t = 0, 1.5, 3 input frames
        array([0.  , 0.  , 0.25], dtype=float32)
    """
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim == 1:
        samples = samples[:, None]
    full_scale = 2 ** (8 * width - 1)
    integers = np.clip(np.rint(samples * full_scale), -full_scale, full_scale - 1).astype(np.int64)
    if orig_rate != target_rate:
        integers = ratecv(integers, width, orig_rate, target_rate)
    return (integers / full_scale).astype(np.float32).mean(axis=1, dtype=np.float32)


def ratecv(fragment: np.ndarray, width: int, inrate: int, outrate: int) -> np.ndarray:
    """CPython's ``audioop.ratecv(fragment, width, nchannels, inrate, outrate, None)[0]`` on integer samples.

    A vectorised ``audioop_ratecv_impl`` (no filtering, no state carried in; the algorithm: docs/features.md), equal
    to audioop's sample for sample. `fragment` is (frames,) or (frames, channels) within the signed range of `width`
    (1 to 4 bytes); the int64 result has the same dimensions and ``(len - 1) * outrate // inrate + 1`` frames, the
    rates divided by their greatest common divisor.

    Example:
        >>> ratecv(np.array([0, 1000, 2000, 3000, 4000, -4000]), 2, 3, 2).tolist()
        [0, 1500, 3000, 0]
    """
    if width not in (1, 2, 3, 4):
        raise ValueError(f"width must be 1, 2, 3 or 4 bytes per sample, got {width!r}")
    _check_rate(inrate, "inrate")
    _check_rate(outrate, "outrate")
    samples = np.asarray(fragment, dtype=np.int64)
    flat = samples.ndim == 1
    if flat:
        samples = samples[:, None]
    divisor = math.gcd(inrate, outrate)
    inrate, outrate = inrate // divisor, outrate // divisor
    if len(samples) == 0:
        return samples[:, 0] if flat else samples
    output = np.arange((len(samples) - 1) * outrate // inrate + 1, dtype=np.int64)
    current = -((-output * inrate) // outrate)  # ceil(j * inrate / outrate): the last input frame read
    d = (current * outrate - output * inrate).astype(np.float64)[:, None]
    shift = 32 - 8 * width
    scaled = samples << shift
    cur = scaled[current].astype(np.float64)
    prev = np.where((current > 0)[:, None], scaled[np.maximum(current - 1, 0)], 0).astype(np.float64)
    value = np.trunc((prev * d + cur * (outrate - d)) / outrate).astype(np.int64) >> shift
    return value[:, 0] if flat else value


def trim_silent_edges(
    waveform: np.ndarray,
    *,
    sampling_rate: int = DEFAULT_SAMPLING_RATE,
    top_db: float = 40.0,
    frame_ms: float = 25.0,
    hop_ms: float = 10.0,
) -> np.ndarray:
    """Cut leading and trailing silence: frames whose RMS is more than `top_db` below the loudest frame's.

    Frames of `frame_ms` every `hop_ms` (the last zero-padded); the view returned runs from the start of the first
    loud frame to the end of the last, so at most one frame of silence is kept at each edge. The threshold is
    relative, so the result does not depend on the level; digital silence is returned whole, with a warning.

    Example:
        >>> tone = np.sin(np.arange(8_000) / 5.0)
        >>> padded = np.concatenate([np.zeros(16_000), tone, np.zeros(4_000)])
        >>> trim_silent_edges(padded).shape  # 8,000 tone samples plus less than a frame at each edge
        (8560,)
    """
    waveform = np.asarray(waveform)
    if waveform.ndim != 1:
        raise ValueError(f"trim_silent_edges takes mono samples of shape (samples,), got shape {waveform.shape}")
    _check_rate(sampling_rate, "sampling_rate")
    for value, label in ((top_db, "top_db"), (frame_ms, "frame_ms"), (hop_ms, "hop_ms")):
        if not value > 0:
            raise ValueError(f"{label} must be positive, got {value!r}")
    frame = max(1, round(sampling_rate * frame_ms / 1000))
    hop = max(1, round(sampling_rate * hop_ms / 1000))
    if len(waveform) == 0:
        return waveform
    num_frames = 1 + max(0, -(-(len(waveform) - frame) // hop))
    padded = np.pad(waveform.astype(np.float64), (0, (num_frames - 1) * hop + frame - len(waveform)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame)[::hop]
    rms = np.sqrt(np.mean(frames**2, axis=1))
    if rms.max() == 0.0:
        logger.warning("trim_silent_edges: the waveform is digital silence; nothing trimmed")
        return waveform
    loud = np.flatnonzero(rms > rms.max() * 10.0 ** (-top_db / 20.0))
    start = loud[0] * hop
    end = min(len(waveform), loud[-1] * hop + frame)
    return waveform[start:end]


def _check_rate(rate: int, label: str) -> None:
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise ValueError(f"{label} must be a positive integer number of samples per second, got {rate!r}")


def _read_source(source: str | os.PathLike | bytes, name: str | None) -> tuple[str, bytes]:
    """The label used in messages and the raw bytes of `source`, which must not be empty."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        label, data = (name if name is not None else "<audio bytes>"), bytes(source)
    elif not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a path or bytes, got {type(source).__name__}")
    else:
        path = Path(source)
        label = str(path) if name is None else f"{name} ({path})"
        if not path.is_file():
            raise FileNotFoundError(f"{label}: no such audio file; check the path or download the stimuli first")
        data = path.read_bytes()
    if not data:
        raise _unreadable(label, "the file is empty (0 bytes)")
    return label, data


def _decode(data: bytes, label: str, dtype: str = "float32") -> tuple[np.ndarray, int, str]:
    """Decode `data` to (samples, channels) floats, its rate and libsndfile subtype, refusing anything incomplete."""
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as audio:
            container, declared_frames, rate, subtype = audio.format, audio.frames, audio.samplerate, audio.subtype
            samples = audio.read(dtype=dtype, always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as error:
        reason = _libsndfile_reason(error)
        raise _unreadable(label, f"libsndfile cannot decode it ({reason})") from error
    problem = _container_truncation(data, container)
    # libsndfile's frame count is exact for WAV (though fitted to the bytes present) and FLAC, an estimate for MP3.
    if problem is None and container != "MP3" and len(samples) < declared_frames:
        problem = f"its header declares {declared_frames} frames but only {len(samples)} could be decoded"
    if problem is not None:
        raise _unreadable(label, f"the file is truncated: {problem}")
    if len(samples) == 0:
        raise _unreadable(label, "the file contains no audio samples")
    if not np.all(np.isfinite(samples)):
        raise _unreadable(label, "the file contains NaN or infinite samples")
    return samples, rate, subtype


def check_audio(source: str | os.PathLike | bytes, *, name: str | None = None) -> None:
    """Check, without decoding its samples, that an audio file is not empty, is a format libsndfile reads and is not
    truncated (a WAV's ``data`` chunk or an MP3's frames cut short): what `load_audio` would refuse, found before a
    model loads, with the same messages. A FLAC cut mid-stream shows only when decoded (`load_audio` refuses it then).
    """
    label, data = _read_source(source, name)
    try:
        container = soundfile.info(io.BytesIO(data)).format
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise _unreadable(label, f"libsndfile cannot decode it ({_libsndfile_reason(error)})") from error
    problem = _container_truncation(data, container)
    if problem is not None:
        raise _unreadable(label, f"the file is truncated: {problem}")


def _container_truncation(data: bytes, container: str) -> str | None:
    """Why a WAV or MP3 container is truncated, or None (other containers are checked when decoded)."""
    if container == "WAV":
        return _wav_truncation(data)
    if container == "MP3":
        return _mp3_truncation(data)
    return None


def _libsndfile_reason(error: Exception) -> str:
    # libsndfile messages quote the BytesIO object's repr, which means nothing to a reader.
    text = str(error)
    if text.startswith("Error opening") and ": " in text:
        text = text.split(": ", 1)[1]
    return text.strip().rstrip(".")


def _wav_truncation(data: bytes) -> str | None:
    """Why a RIFF/WAVE file is truncated (its ``data`` chunk is longer than the bytes after it), or None."""
    if data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        return None
    byteorder = "little" if data[:4] == b"RIFF" else "big"
    position = 12
    while position + 8 <= len(data):
        chunk_id = data[position : position + 4]
        size = int.from_bytes(data[position + 4 : position + 8], byteorder)
        if chunk_id == b"data":
            present = len(data) - position - 8
            # Streaming writers leave the size 0 or 0xFFFFFFFF when they cannot seek back to fill it in.
            if size not in (0, 0xFFFFFFFF) and present < size:
                return f"its data chunk declares {size} bytes of samples but only {present} are present"
            return None
        position += 8 + size + (size & 1)
    return None


# MPEG audio frame headers (ISO 11172-3 / 13818-3): bit rates in kbit/s by (MPEG-1?, layer), index 1..14.
_MPEG_BITRATES = {
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44_100, 48_000, 32_000), 2: (22_050, 24_000, 16_000), 0: (11_025, 12_000, 8_000)}


def _mpeg_frame(data: bytes, position: int) -> tuple[int, int] | None:
    """(frame length in bytes, offset of a Xing/Info tag in it) of the MPEG audio frame at `position`, or None."""
    if position + 4 > len(data):
        return None
    header = int.from_bytes(data[position : position + 4], "big")
    version, layer_bits = (header >> 19) & 3, (header >> 17) & 3
    bitrate_index, rate_index = (header >> 12) & 15, (header >> 10) & 3
    if header >> 21 != 0x7FF or version == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None  # no sync, a reserved value, or free-format bit rate (whose frame length is not in the header)
    mpeg1, layer, padding = version == 3, 4 - layer_bits, (header >> 9) & 1
    bitrate = _MPEG_BITRATES[(mpeg1, layer)][bitrate_index - 1] * 1000
    rate = _MPEG_RATES[version][rate_index]
    if layer == 1:
        length = (12 * bitrate // rate + padding) * 4
    else:
        length = (144 if mpeg1 or layer == 2 else 72) * bitrate // rate + padding
    mono = (header >> 6) & 3 == 3
    side_info = (17 if mono else 32) if mpeg1 else (9 if mono else 17)
    return length, 4 + side_info


def _mp3_truncation(data: bytes) -> str | None:
    """Why an MP3 is truncated (last frame cut short, or fewer frames than its Xing/Info tag says), or None."""
    position = 0
    if data[:3] == b"ID3" and len(data) >= 10:
        # ID3v2 size is "syncsafe": 7 bits per byte; a footer (flag 0x10) adds 10 more bytes.
        size = 0
        for byte in data[6:10]:
            size = (size << 7) | (byte & 0x7F)
        position = 10 + size + (10 if data[5] & 0x10 else 0)
    first = _mpeg_frame(data, position)
    if first is None:
        return None  # not a plain frame sequence we can follow; libsndfile's own checks stand
    declared_frames = None
    tag = position + first[1]
    if data[tag : tag + 4] in (b"Xing", b"Info") and int.from_bytes(data[tag + 4 : tag + 8], "big") & 1:
        declared_frames = int.from_bytes(data[tag + 8 : tag + 12], "big")
    frames = 0
    while (frame := _mpeg_frame(data, position)) is not None:
        if position + frame[0] > len(data):
            return (
                f"its last MPEG frame (at byte {position}) needs {frame[0]} bytes but the file ends "
                f"{len(data) - position} bytes after its start"
            )
        position += frame[0]
        frames += 1
    # Encoders disagree on whether the tag frame counts itself, hence the one-frame slack.
    if declared_frames is not None and frames + 1 < declared_frames:
        return f"its Xing/Info header declares {declared_frames} MPEG frames but only {frames} are present"
    return None
