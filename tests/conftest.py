"""Shared fixtures: local HTTP servers (real sockets on 127.0.0.1), generated audio, and an isolated stimulus cache."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
from http_servers import HubServer, StaticFileServer


@pytest.fixture(autouse=True)
def _isolated_stimulus_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test away from the user's caches and from the public stimulus servers."""
    monkeypatch.setenv("SPEAT_CACHE", str(tmp_path_factory.mktemp("speat-cache")))
    for variable in ("SPEAT_SAA_BASE_URL", "SPEAT_ZENODO_BASE_URL", "SPEAT_SYNTHESIZED_BASE_URL",
                     "SPEAT_GITHUB_API_URL", "SPEAT_CORAAL_BASE_URL", "SPEAT_TORGO_BASE_URL"):
        monkeypatch.delenv(variable, raising=False)


SHARED_DIR = Path(__file__).resolve().parent.parent.parent / "shared"
"""The project's shared folder (papers, stimulus selections, published numbers), beside the repository: ../shared."""


@pytest.fixture
def shared_dir() -> Path:
    """``../shared`` relative to the repository root; the test is skipped, saying so, when it is not there."""
    if not SHARED_DIR.is_dir():
        pytest.skip("../shared (the project's shared folder, beside the repository) is not present")
    return SHARED_DIR


@pytest.fixture
def static_server() -> Iterator[StaticFileServer]:
    """A `StaticFileServer` on 127.0.0.1, stopped after the test."""
    with StaticFileServer() as server:
        yield server


@pytest.fixture
def hub_server() -> Iterator[HubServer]:
    """A Hugging Face Hub-compatible `HubServer` on 127.0.0.1, stopped after the test."""
    with HubServer() as server:
        yield server


def _tone(seconds: float, frequency: float, sampling_rate: int, channels: int) -> np.ndarray:
    time = np.arange(int(seconds * sampling_rate)) / sampling_rate
    wave = (0.3 * np.sin(2 * np.pi * frequency * time)).astype(np.float32)
    return wave if channels == 1 else np.stack([wave] * channels, axis=1)


@pytest.fixture
def make_audio() -> Callable[..., bytes]:
    """Factory of small encoded tones: ``make_audio("mp3", seconds=0.25, frequency=440.0)`` -> bytes.

    Formats: ``wav``, ``flac``, ``mp3`` (soundfile encodes all three). Different frequencies give different bytes.
    """

    def make(fmt: str = "wav", *, seconds: float = 0.25, frequency: float = 440.0, sampling_rate: int = 16_000,
             channels: int = 1) -> bytes:
        buffer = io.BytesIO()
        soundfile.write(buffer, _tone(seconds, frequency, sampling_rate, channels), sampling_rate,
                        format=fmt.upper())
        return buffer.getvalue()

    return make


@pytest.fixture(scope="session")
def stimulus_audio() -> Callable[[str], bytes]:
    """Small, distinct audio per stimulus id (MP3 for ``saa/...``, WAV otherwise), made once per session."""
    made: dict[str, bytes] = {}

    def audio(stimulus_id: str) -> bytes:
        if stimulus_id not in made:
            frequency = 200.0 + int(hashlib.sha256(stimulus_id.encode()).hexdigest()[:4], 16) % 2000
            fmt = "MP3" if stimulus_id.startswith("saa/") else "WAV"
            buffer = io.BytesIO()
            soundfile.write(buffer, _tone(0.05, frequency, 16_000, 1), 16_000, format=fmt)
            made[stimulus_id] = buffer.getvalue()
        return made[stimulus_id]

    return audio


@pytest.fixture(scope="session")
def write_stimuli(stimulus_audio: Callable[[str], bytes]) -> Callable[..., dict[str, Path]]:
    """Write the audio of stimulus ids into a directory in the cache layout (``saa/<name>.mp3``,
    ``mess/<code>_SCR.wav``) or flat (all files in the root); returns id -> path."""

    def write(root: Path, stimulus_ids: Iterable[str], *, flat: bool = False) -> dict[str, Path]:
        paths = {}
        for stimulus_id in stimulus_ids:
            corpus, _, name = stimulus_id.partition("/")
            file_name = f"{name}.mp3" if corpus == "saa" else f"{name}_SCR.wav"
            path = root / file_name if flat else root / corpus / file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(stimulus_audio(stimulus_id))
            paths[stimulus_id] = path
        return paths

    return write


DEMO_COLUMNS = ("stimulus_id", "file_name", "test", "role", "group", "voice", "text", "pitch", "speed", "sex",
                "age_group", "accent", "valence", "seconds")
DEMO_GROUPS = {("gender", "X"): "female", ("gender", "Y"): "male", ("age", "X"): "young", ("age", "Y"): "old",
               ("native", "X"): "us", ("native", "Y"): "korean", ("attributes", "A"): "pleasant",
               ("attributes", "B"): "unpleasant"}


@pytest.fixture
def demo_dir(tmp_path: Path, make_audio: Callable[..., bytes]) -> Path:
    """A small demo set in the embedded demo set's format (metadata.csv + audio/<id>.flac), 3 clips per group."""
    root = tmp_path / "demo"
    (root / "audio").mkdir(parents=True)
    rows = []
    for index, ((test, role), group) in enumerate(DEMO_GROUPS.items()):
        for number in range(1, 4):
            stimulus_id = f"demo-{test}-{group}-{number:02d}"
            audio = make_audio("flac", frequency=300 + 40 * index + number)
            (root / "audio" / f"{stimulus_id}.flac").write_bytes(audio)
            rows.append({"stimulus_id": stimulus_id, "file_name": f"audio/{stimulus_id}.flac", "test": test,
                         "role": role, "group": group, "voice": f"espeak-ng en-us+v{number}",
                         "text": "Please call Stella.", "pitch": "50", "speed": "160",
                         "sex": "female" if group == "female" else "male", "age_group": "adult", "accent": "us",
                         "valence": group if test == "attributes" else "", "seconds": "0.25"})
    with open(root / "metadata.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=DEMO_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return root
