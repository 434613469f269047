"""Embedding throughput: the whole pipeline against bare forward passes of the same model on the same clips.

A randomly initialised base-size wav2vec 2.0 (``Wav2Vec2Config()``: 95M parameters, the compute of the real
wav2vec2-base) embeds about two minutes of audio in clips of 2-30 s. The pipeline reads each clip from a WAV file,
decodes and resamples it, runs the feature extractor and the model, pools every layer and writes the embedding
cache. The bare measurement only calls the model on the already-decoded waveforms. Both run in this process, one
after the other, after a warm-up, twice in alternation; the best time of each is reported.

Then precision: the demo stimuli (all three tests) embedded in float32 and in bfloat16, side by side in this run,
by the same random base-size wav2vec 2.0 and a random MelHuBERT (base): throughput of each and the largest
|d(float32) - d(bfloat16)| over the three tests, which is what a user gives up for the speed.

    .venv/bin/python benchmarks/embedding_throughput.py
"""

import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch
import transformers

from speat_metric.adapters import load_encoder
from speat_metric.adapters.transformers_encoder import TransformersEncoder
from speat_metric.audio import load_audio
from speat_metric.embedding import Clip, clips_of, embed_stimuli
from speat_metric.formatting import format_parameters
from speat_metric.pipeline import evaluate_tests
from speat_metric.stimuli import load_speat_test

CLIP_SECONDS = [2, 30, 7, 12, 4, 21, 9, 3, 15, 5, 11]  # 119 s in all
REPETITIONS = 2


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="speat-bench-"))
    torch.manual_seed(0)
    transformers.Wav2Vec2Model(transformers.Wav2Vec2Config()).save_pretrained(work / "model")
    transformers.Wav2Vec2FeatureExtractor(return_attention_mask=False).save_pretrained(work / "model")
    encoder = TransformersEncoder(work / "model")

    rng = np.random.default_rng(0)
    clips = []
    for index, seconds in enumerate(CLIP_SECONDS):
        waveform = (0.1 * rng.standard_normal(seconds * 44_100)).astype(np.float32)  # 44.1 kHz, resampled on read
        path = work / f"clip{index}.wav"
        soundfile.write(path, waveform, 44_100)
        clips.append(Clip(sha256=f"{index:064d}", path=str(path), stimulus_id=path.stem))
    inputs = [torch.from_numpy(load_audio(clip.path))[None] for clip in clips]
    total_seconds = sum(CLIP_SECONDS)

    with torch.inference_mode():
        encoder.model(inputs[0][:, :32_000], output_hidden_states=True)  # warm-up
    bare_times, pipeline_times = [], []
    for repetition in range(REPETITIONS):  # alternate, and keep each one's best, to damp machine noise
        with torch.inference_mode():
            start = time.perf_counter()
            for waveform in inputs:
                encoder.model(waveform, output_hidden_states=True)
            bare_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        embed_stimuli(encoder, clips, cache_dir=work / f"cache{repetition}", progress=False)  # a cold cache each time
        pipeline_times.append(time.perf_counter() - start)
    bare, pipeline = min(bare_times), min(pipeline_times)

    print(f"random base-size wav2vec 2.0 ({format_parameters(encoder.description.num_parameters)} parameters, "
          f"group norm: one clip per batch), {len(clips)} clips, {total_seconds} s of 44.1 kHz audio, "
          f"{torch.get_num_threads()} torch threads")
    print(f"bare forward passes: {total_seconds / bare:6.1f} audio-s/s ({bare:.1f} s)")
    print(f"speat pipeline:      {total_seconds / pipeline:6.1f} audio-s/s ({pipeline:.1f} s: decode, resample, "
          f"feature extractor, model, pooling, cache writes)")
    print(f"pipeline overhead: {100 * (pipeline - bare) / bare:+.1f}% of bare forward time (target < 10%)")
    print(f"peak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB")
    compare_precisions(work)


def compare_precisions(work: Path) -> None:
    """float32 against bfloat16 on the demo stimuli: throughput and the largest change of d."""
    tests = {name: load_speat_test(name, source="demo", progress=False) for name in ("gender", "age", "native")}
    clips = clips_of([stimulus for test in tests.values() for stimulus in test])
    seconds = sum(len(load_audio(clip.path)) for clip in clips) / 16_000
    print(f"\nprecision on the demo stimuli ({len(clips)} clips, {seconds:.0f} s of audio, 3 tests):")
    models = {"random base wav2vec 2.0": lambda dtype: TransformersEncoder(work / "model", dtype=dtype),
              "random MelHuBERT base": lambda dtype: load_encoder("random:melhubert-base", dtype=dtype)}
    for label, make in models.items():
        throughput, effect_sizes = {}, {}
        for dtype in ("float32", "bfloat16"):
            encoder = make(dtype)
            cache = work / f"precision-{label}-{dtype}".replace(" ", "-")
            embed_stimuli(encoder, clips[:2], progress=False)  # warm-up
            start = time.perf_counter()
            embed_stimuli(encoder, clips, cache_dir=cache, progress=False)
            throughput[dtype] = seconds / (time.perf_counter() - start)
            records = evaluate_tests(encoder, tests, cache_dir=cache, num_permutations=1000, progress=False)
            effect_sizes[dtype] = {record.test: record.speat.effect_size for record in records}
        worst = max(abs(effect_sizes["float32"][test] - effect_sizes["bfloat16"][test]) for test in tests)
        print(f"  {label:<24} float32 {throughput['float32']:5.1f} audio-s/s, bfloat16 {throughput['bfloat16']:5.1f}"
              f" audio-s/s ({throughput['bfloat16'] / throughput['float32']:.2f}x); max |d(float32) - d(bfloat16)| "
              f"= {worst:.3f} (" + ", ".join(f"{test} {effect_sizes['float32'][test]:+.3f} vs "
                                             f"{effect_sizes['bfloat16'][test]:+.3f}" for test in tests) + ")")


if __name__ == "__main__":
    main()
