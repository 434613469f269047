"""How far d moves between the ``hf`` and ``speat2023`` extraction profiles, and how much of that is the resampler.

Random base-size wav2vec 2.0 and HuBERT (``Wav2Vec2Config()``, ``HubertConfig()``: group-norm CNN, post-LN, the
layout of wav2vec2-base and hubert-base-ls960, with the feature extractor those ship: ``do_normalize=True``) embed
the demo stimuli (all three tests), and each test's d is computed, side by side in this run, from:

- ``hf``: transformers 5 hidden_states, soxr;
- ``speat2023``: the SpEAT reference's layers and waveform handling, pydub's ``audioop.ratecv`` path;
- ``hf`` layers with the ``ratecv`` path, which splits |d(hf) - d(speat2023)| into the resampler alone and the
  layers alone.

The demo clips are 16 kHz MP3s, so there the resampler path only quantises to 16 bits. The SpEAT stimuli are 44.1 kHz
recordings, so the same is repeated on 44.1 kHz 16-bit WAV copies of the demo clips (upsampled with soxr "VHQ"),
where ``ratecv`` really resamples (without an anti-alias filter). Last, the SpEAT reference computed its cosines in
float32 (sklearn's ``cosine_similarity`` on float32 embeddings); |d(float64) - d(float32)| is printed for the ``hf``
embeddings. Random models are not trained ones: the figures give the order of magnitude of each difference, not its
value for a published model.

    .venv/bin/python benchmarks/profile_sensitivity.py
"""

import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import soxr
import torch
import transformers

from speat_metric.adapters.transformers_encoder import TransformersEncoder
from speat_metric.audio import load_audio
from speat_metric.pooling import pool_frames
from speat_metric.statistics import speat_test
from speat_metric.stimuli import load_speat_test

TESTS = ("gender", "age", "native")
MODELS = {"wav2vec2": (transformers.Wav2Vec2Model, transformers.Wav2Vec2Config),
          "hubert": (transformers.HubertModel, transformers.HubertConfig)}


def save_random_model(kind: str, directory: Path) -> Path:
    model_class, config_class = MODELS[kind]
    torch.manual_seed(0)
    model_class(config_class()).save_pretrained(directory)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False).save_pretrained(directory)
    return directory


def demo_groups() -> dict[str, dict[str, list[str]]]:
    """Per test, the audio paths of each role."""
    groups = {}
    for name in TESTS:
        test = load_speat_test(name, source="demo", progress=False)
        groups[name] = {role: [stimulus.path for stimulus in test.of_role(role)] for role in "XYAB"}
    return groups


def copies_at(groups: dict[str, dict[str, list[str]]], directory: Path, rate: int) -> dict[str, dict[str, list[str]]]:
    """The same groups over 16-bit WAV copies of every clip at `rate`."""
    directory.mkdir(parents=True, exist_ok=True)
    copies: dict[str, str] = {}
    for path in {path for test in groups.values() for paths in test.values() for path in paths}:
        copy = directory / f"{Path(path).stem}.wav"
        waveform = soxr.resample(load_audio(path), 16_000, rate, quality="VHQ")
        soundfile.write(copy, np.clip(waveform, -1, 1), rate, subtype="PCM_16")
        copies[path] = str(copy)
    return {name: {role: [copies[path] for path in paths] for role, paths in test.items()}
            for name, test in groups.items()}


def embed(encoder: TransformersEncoder, paths: list[str], resampler: str) -> dict[str, np.ndarray]:
    """Mean over frames, then over layers, of each clip encoded alone (as the pipeline does for group-norm CNNs)."""
    return {path: pool_frames(encoder.encode([load_audio(path, resampler=resampler)]))[0].mean(axis=0)
            for path in paths}


def effect_size(groups: dict[str, list[str]], embeddings: dict[str, np.ndarray], *, float32: bool = False) -> float:
    x, y, a, b = (np.stack([embeddings[path] for path in groups[role]]) for role in "XYAB")
    if not float32:
        return speat_test(x, y, a, b, num_permutations=1, n_bootstrap=0, seed=0).effect_size

    def unit(rows):  # the reference: sklearn cosine_similarity on float32 embeddings, numpy float32 statistics
        rows = rows.astype(np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    targets = unit(np.concatenate([x, y]))
    s = (targets @ unit(a).T).mean(axis=1) - (targets @ unit(b).T).mean(axis=1)
    return float((s[: len(x)].mean() - s[len(x):].mean()) / np.std(s, ddof=1))


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="speat-profiles-"))
    groups = {"demo (16 kHz MP3)": demo_groups()}
    groups["44.1 kHz WAV copies"] = copies_at(groups["demo (16 kHz MP3)"], work / "copies", 44_100)
    print(f"random base-size models, demo stimuli, {torch.get_num_threads()} torch threads; "
          "d = mean over frames, then over layers, as both studies")
    for kind in MODELS:
        directory = save_random_model(kind, work / kind)
        encoders = {profile: TransformersEncoder(directory, profile=profile) for profile in ("hf", "speat2023")}
        for stimuli, tests in groups.items():
            started = time.perf_counter()
            paths = sorted({path for test in tests.values() for paths in test.values() for path in paths})
            runs = {"hf": embed(encoders["hf"], paths, "soxr"),
                    "hf layers + ratecv": embed(encoders["hf"], paths, "ratecv"),
                    "speat2023": embed(encoders["speat2023"], paths, "ratecv")}
            print(f"\n{kind}, {stimuli} ({time.perf_counter() - started:.0f} s):")
            print(f"  {'test':<7} {'d hf':>8} {'d speat2023':>12} {'|hf - speat2023|':>17} {'resampler alone':>16} "
                  f"{'layers alone':>13} {'float32 cosines':>16}")
            for name, test in tests.items():
                d = {label: effect_size(test, embeddings) for label, embeddings in runs.items()}
                float32 = effect_size(test, runs["hf"], float32=True)
                print(f"  {name:<7} {d['hf']:>+8.4f} {d['speat2023']:>+12.4f} {abs(d['hf'] - d['speat2023']):>17.4f} "
                      f"{abs(d['hf'] - d['hf layers + ratecv']):>16.2e} "
                      f"{abs(d['hf layers + ratecv'] - d['speat2023']):>13.4f} {abs(d['hf'] - float32):>16.1e}")


if __name__ == "__main__":
    main()
