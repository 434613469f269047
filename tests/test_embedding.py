"""speat_metric.embedding: each clip embedded once, cached, batched by length, split across processes."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
from launching import accelerate_launch
from tiny_models import save_tiny_model

from speat_metric.adapters.base import SpeechEncoder
from speat_metric.adapters.transformers_encoder import TransformersEncoder
from speat_metric.embedding import clips_of, embed_stimuli, length_batches
from speat_metric.pipeline import evaluate_tests
from speat_metric.stimuli import SpeatTestSpec, load_speat_test

BATCHING_RTOL = 1e-6
"""How far d may move when the same clips are batched differently (float32 summation order); see README."""


class CountingEncoder(SpeechEncoder):
    """Counts the clips that reach the model."""

    def __init__(self, inner: SpeechEncoder) -> None:
        self.inner, self.description, self.supports_padding = inner, inner.description, inner.supports_padding
        self.clips = 0

    def encode(self, waveforms):
        self.clips += len(waveforms)
        return self.inner.encode(waveforms)


def write_clip(path: Path, seed: int, seconds: float, tone: float) -> Path:
    rng = np.random.default_rng(seed)
    time = np.arange(int(seconds * 16_000)) / 16_000
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * tone * time) + rng.normal(0, 0.05, len(time))).astype(np.float32),
                    16_000)
    return path


@pytest.fixture()
def audio_dir(tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    for index in range(16):
        group = "xyab"[index // 4]
        tone = {"x": 220, "y": 330, "a": 440, "b": 550}[group] * (1 + 0.05 * (index % 4))
        write_clip(folder / f"{group}{index % 4}.wav", index, 0.6 + 0.15 * index % 0.9, tone)
    return folder


def make_tests(folder: Path) -> dict:
    files = {group: sorted(folder.glob(f"{group}*.wav")) for group in "xyab"}
    first = SpeatTestSpec.from_files("first", x=files["x"], y=files["y"], a=files["a"], b=files["b"],
                                     pairs=[(f"custom/x{i}", f"custom/y{3 - i}") for i in range(4)])
    second = SpeatTestSpec.from_files("second", x=files["y"], y=files["x"], a=files["a"], b=files["b"])
    return {spec.name: load_speat_test(spec, progress=False) for spec in (first, second)}


@pytest.fixture(scope="module")
def wav2vec2(tmp_path_factory):
    return TransformersEncoder(save_tiny_model("wav2vec2", tmp_path_factory.mktemp("w2v")))


def test_each_clip_is_embedded_once_and_the_cache_serves_a_rerun(audio_dir, wav2vec2, tmp_path):
    tests = make_tests(audio_dir)
    counting = CountingEncoder(wav2vec2)
    first = evaluate_tests(counting, tests, cache_dir=tmp_path / "cache", num_permutations=2000, progress=False)
    assert counting.clips == 16  # two tests share all 16 clips
    counting.clips = 0
    second = evaluate_tests(counting, tests, cache_dir=tmp_path / "cache", num_permutations=2000, progress=False)
    assert counting.clips == 0
    assert [record.speat for record in first] == [record.speat for record in second]
    assert first[0].speat.effect_size == pytest.approx(-first[1].speat.effect_size)  # the second test swaps X and Y


def test_changing_the_model_pooling_or_audio_invalidates(audio_dir, wav2vec2, tmp_path):
    tests = make_tests(audio_dir)
    counting = CountingEncoder(wav2vec2)
    evaluate_tests(counting, tests, cache_dir=tmp_path, num_permutations=100, progress=False)
    counting.clips = 0
    evaluate_tests(counting, tests, cache_dir=tmp_path, frame_pooling="max", num_permutations=100, progress=False)
    assert counting.clips == 16
    counting.clips = 0
    other_revision = CountingEncoder(wav2vec2)
    other_revision.description = type(wav2vec2.description)(**{**wav2vec2.description.to_dict(), "revision": "v2"})
    evaluate_tests(other_revision, tests, cache_dir=tmp_path, num_permutations=100, progress=False)
    assert other_revision.clips == 16
    write_clip(audio_dir / "a0.wav", 99, 0.7, 500)  # new content under the same name
    evaluate_tests(counting, make_tests(audio_dir), cache_dir=tmp_path, num_permutations=100, progress=False)
    assert counting.clips == 1


def test_corrupted_cache_entry_is_recomputed(audio_dir, wav2vec2, tmp_path):
    tests = make_tests(audio_dir)
    counting = CountingEncoder(wav2vec2)
    reference = evaluate_tests(counting, tests, cache_dir=tmp_path, num_permutations=100, progress=False)
    victim = next(tmp_path.glob("*/*.npz"))
    victim.write_bytes(victim.read_bytes()[:-20] + b"\0" * 20)
    counting.clips = 0
    again = evaluate_tests(counting, tests, cache_dir=tmp_path, num_permutations=100, progress=False)
    assert counting.clips == 1
    # The recomputed clip is embedded alone, not in its original batch: batch composition changes float32 summation
    # order (about 1e-7 relative on these activations), so d may move in the 9th digit, never more than BATCHING_RTOL.
    for new, old in zip(again, reference):
        assert new.speat.effect_size == pytest.approx(old.speat.effect_size, rel=BATCHING_RTOL)
        assert new.speat.p_value == old.speat.p_value and new.speat.num_permutations == old.speat.num_permutations


def test_padding_does_not_change_embeddings(audio_dir, wav2vec2):
    clips = clips_of(list(make_tests(audio_dir)["first"]))
    batched = embed_stimuli(wav2vec2, clips, batch_seconds=100, progress=False)
    alone = embed_stimuli(wav2vec2, clips, batch_seconds=0.01, progress=False)  # every clip in its own batch
    for key in batched:
        np.testing.assert_allclose(batched[key], alone[key], atol=1e-5)


def test_length_batches():
    items = [(str(i), length) for i, length in enumerate([5, 9, 3, 9, 7, 1, 20])]
    batches = length_batches(items, max_samples=20, allow_padding=True)
    assert sorted(key for batch in batches for key in batch) == sorted(key for key, _ in items)
    lengths = dict(items)
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(lengths[key] for key in batch) <= 20
    strict = length_batches(items, max_samples=100, allow_padding=False)
    assert all(len({lengths[key] for key in batch}) == 1 for batch in strict)
    assert ["1", "3"] in strict


@pytest.mark.slow
def test_accelerate_launch_splits_and_gathers(audio_dir, wav2vec2, tmp_path):
    """Two processes under `accelerate launch` give the embeddings of a single process, each clip computed once."""
    script = tmp_path / "run.py"
    script.write_text(f"""
import json, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from speat_metric.adapters.transformers_encoder import TransformersEncoder
from speat_metric.distributed import is_main_process
from speat_metric.embedding import clips_of, embed_stimuli
from test_embedding import CountingEncoder, make_tests
from pathlib import Path
encoder = CountingEncoder(TransformersEncoder({wav2vec2.description.name!r}))
clips = clips_of(list(make_tests(Path({str(audio_dir)!r}))["first"]))
embeddings = embed_stimuli(encoder, clips, progress=False)
# one file per process: two processes printing to one pipe can interleave their lines
import os
Path({str(tmp_path)!r}, "count-" + os.environ["RANK"]).write_text(str(encoder.clips))
if is_main_process():
    json.dump({{key: value.tolist() for key, value in embeddings.items()}}, open({str(tmp_path / "out.json")!r}, "w"))
""")
    completed = subprocess.run(accelerate_launch(str(script)), capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    counts = [int(path.read_text()) for path in tmp_path.glob("count-*")]
    assert sorted(counts) == [8, 8]
    gathered = json.loads((tmp_path / "out.json").read_text())
    single = embed_stimuli(wav2vec2, clips_of(list(make_tests(audio_dir)["first"])), progress=False)
    assert set(gathered) == set(single)
    for key, value in single.items():
        np.testing.assert_allclose(np.array(gathered[key]), value, atol=1e-5)
