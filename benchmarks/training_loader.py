"""Training data loading: crops per second of the dataloader alone, against a training step on this machine and the
crop rate a GPU step would need.

The loader is `speat_metric.training.data.make_dataloader` as ``speat prune`` and ``speat distill`` build it: files
checked, length-bucketed batches, crops of 15 s decoded (FLAC at 16 kHz, as LibriSpeech ships) and turned into model
inputs by the recipe's batch function. Real speech: the Debian packages asterisk-core-sounds-en-* (their prompts
concatenated into 20 s recordings) when installed, otherwise synthetic audio (harmonic "syllables" with pauses, said
in the output); the decoding and feature costs depend on the length, hardly on the content. Printed:

1. Crops per second of the loader alone, in the main process (``num_workers=0``: one core) and with one worker,
   for three batch functions: the crops only (decoding and cropping), MelHuBERT's filter banks (Kaldi fbank, the
   authors' front end) and a wav2vec2 feature extractor (waveform normalisation).
2. A model's training step on this CPU: forward and backward of a random MelHuBERT and wav2vec 2.0 (``--model base``:
   the size the study prunes; ``small``: MelHuBERT small and a 3-layer wav2vec2), per crop.
3. The crop rate a GPU step would need: the forward FLOPs of one crop counted by ``torch.utils.flop_counter``, a step
   taken as 3 forwards (forward and backward), at the GPU throughput `pruned_inference` assumes (an estimate, not a
   measurement), and the workers that rate takes at the measured one-core rate.
4. Both together on this machine: steps per second of a loop fed by the loader with 0 and with 1 worker, for a
   CPU step (MelHuBERT small, forward and backward) and for a GPU-like step (the process sleeps for the estimated
   GPU step of 3., as it waits on a GPU): the measurements behind ``num_workers: auto`` taking no worker on a
   2-core machine (`default_num_workers` gives the figures of three runs).

    .venv/bin/python benchmarks/training_loader.py [--batch 4] [--batches 6] [--model base|small] [--step-batch 1]
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch
import transformers
from pruned_inference import ASSUMED_GPU_FLOPS, ASSUMED_STEP_FLOOR
from torch.utils.flop_counter import FlopCounterMode

from speat_metric.adapters.melhubert import MelHuBERTConfig, MelHuBERTModel
from speat_metric.audio import load_audio
from speat_metric.training.data import (
    MAX_AUTO_WORKERS,
    RandomCrops,
    default_num_workers,
    make_dataloader,
    open_training_audio,
)
from speat_metric.training.models import FilterBankInputs, WaveformInputs

CROP_SECONDS = 15.0  # MelHuBERT's 750 frames of 20 ms; wav2vec2's 15.625 s crop costs the same within 4%
RECORDING_SECONDS = 20.0
ASTERISK_SOUNDS = ("/usr/share/asterisk/sounds/en", "/usr/share/asterisk/sounds/en_US", "/usr/share/asterisk/sounds")
FEATURES = {"MelHuBERT": "MelHuBERT filter banks", "wav2vec2": "wav2vec2 feature extractor"}
STUDY_BATCHES = {"MelHuBERT": 4, "wav2vec2": 12}  # crops per step and GPU in the study (pruning/configs/common.yaml)


class Crops:
    """The crops only: decoding and cropping, no features (picklable, for workers)."""

    def __call__(self, waveforms: list[np.ndarray], generator: np.random.Generator) -> dict[str, torch.Tensor]:
        return {"waveforms": torch.from_numpy(np.stack(waveforms))}


class Features:
    """A model's inputs of the crops (picklable, for workers)."""

    def __init__(self, inputs) -> None:
        self.inputs = inputs

    def __call__(self, waveforms: list[np.ndarray], generator: np.random.Generator) -> dict[str, torch.Tensor]:
        return self.inputs(waveforms)


def speech_folder(root: Path, count: int) -> str:
    """`count` recordings of 20 s in `root` (16 kHz FLAC), and what they are."""
    prompts = next((sorted(Path(folder).rglob("*.wav")) for folder in ASTERISK_SOUNDS
                    if Path(folder).is_dir() and any(Path(folder).rglob("*.wav"))), [])
    samples = round(RECORDING_SECONDS * 16_000)
    rng = np.random.default_rng(0)
    if prompts:
        speech = np.concatenate([load_audio(str(prompt)) for prompt in prompts[:400]])
        source = f"real speech: {min(len(prompts), 400)} asterisk prompts from {prompts[0].parent}, concatenated"
    else:
        speech = np.concatenate([_syllable(rng) for _ in range(count * 100)])
        source = "SYNTHETIC audio (harmonic syllables and pauses): asterisk-core-sounds-en-* is not installed"
    for index in range(count):
        start = int(rng.integers(max(len(speech) - samples, 1)))
        recording = np.resize(speech[start:start + samples], samples)
        soundfile.write(root / f"{index:03d}.flac", recording, 16_000, format="FLAC")
    return source


def _syllable(rng: np.random.Generator) -> np.ndarray:
    """A voiced syllable (a few harmonics of a gliding pitch, under an envelope) and the pause after it."""
    seconds = rng.uniform(0.12, 0.35)
    time_axis = np.arange(int(seconds * 16_000)) / 16_000
    pitch = rng.uniform(90, 250) * (1 + 0.2 * time_axis / seconds)
    phase = 2 * np.pi * np.cumsum(pitch) / 16_000
    voiced = sum(np.sin(harmonic * phase) / harmonic for harmonic in range(1, 8)) * np.hanning(len(time_axis))
    pause = np.zeros(int(rng.uniform(0.02, 0.25) * 16_000))
    return (0.1 * np.concatenate([voiced + 0.01 * rng.standard_normal(len(voiced)), pause])).astype(np.float32)


def loader_rate(crops: RandomCrops, prepare, *, batch: int, batches: int, workers: int) -> float:
    """Crops per second of the loader over `batches` batches after the first (worker start and warm-up)."""
    loader = make_dataloader(crops, batch_size=batch, prepare=prepare, num_workers=workers)
    iterator = iter(loader)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch / (time.perf_counter() - start)


def step_time(module: torch.nn.Module, forward, inputs: dict[str, torch.Tensor], repetitions: int = 2) -> float:
    """Best seconds of a forward and backward (the mean of the last hidden state as the loss) after a warm-up."""
    times = []
    for _ in range(repetitions + 1):
        start = time.perf_counter()
        forward(module, inputs)[-1].pow(2).mean().backward()
        times.append(time.perf_counter() - start)
        module.zero_grad(set_to_none=True)
    return min(times[1:])


def forward_flops(module: torch.nn.Module, forward, inputs: dict[str, torch.Tensor]) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        forward(module, inputs)
    return counter.get_total_flops()


def melhubert_forward(module, inputs):
    return module(inputs["features"], inputs["frame_mask"])


def wav2vec2_forward(module, inputs):
    return module(inputs["input_values"], output_hidden_states=True).hidden_states


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4, help="crops per loader batch and model step (default 4)")
    parser.add_argument("--batches", type=int, default=6, help="timed loader batches of each kind (default 6)")
    parser.add_argument("--model", choices=("base", "small"), default="base", help="model size of the step (base)")
    parser.add_argument("--step-batch", type=int, default=1, help="crops per CPU training step (default 1)")
    args = parser.parse_args()
    torch.manual_seed(0)
    melhubert_config = MelHuBERTConfig.base() if args.model == "base" else MelHuBERTConfig.small()
    wav2vec2_config = transformers.Wav2Vec2Config(num_hidden_layers=12 if args.model == "base" else 3)
    melhubert = MelHuBERTModel(melhubert_config).train()
    wav2vec2 = transformers.Wav2Vec2Model(wav2vec2_config).train()
    models = {"MelHuBERT": (melhubert, melhubert_forward, FilterBankInputs(melhubert_config)),
              "wav2vec2": (wav2vec2, wav2vec2_forward,
                           WaveformInputs(transformers.Wav2Vec2FeatureExtractor(do_normalize=True)))}

    with tempfile.TemporaryDirectory() as directory:
        source = speech_folder(Path(directory), (args.batches + 1) * args.batch * 2)
        audio = open_training_audio(directory).check_files(min_seconds=2.0, progress=False)
        crops = RandomCrops(audio, crop_seconds=CROP_SECONDS, min_seconds=2.0, seed=0)
        cores = len(os.sched_getaffinity(0))
        print(f"{source}; {len(audio)} recordings of {RECORDING_SECONDS:g} s, crops of {CROP_SECONDS:g} s, batches "
              f"of {args.batch}; {cores} cores, torch {torch.get_num_threads()} threads; num_workers auto here: "
              f"{default_num_workers()}")

        print("\n1. the loader alone, crops per second (best of 2, alternated):")
        one_core = {}
        for label, prepare in (("crops only (decode, crop)", Crops()),
                               ("MelHuBERT filter banks", Features(models["MelHuBERT"][2])),
                               ("wav2vec2 feature extractor", Features(models["wav2vec2"][2]))):
            rates = {0: 0.0, 1: 0.0}
            for order in ((0, 1), (1, 0)):  # alternated, the best of each: a busy machine slows one or the other
                for workers in order:
                    rates[workers] = max(rates[workers], loader_rate(crops, prepare, batch=args.batch,
                                                                     batches=args.batches, workers=workers))
            one_core[label] = rates[1]
            print(f"  {label:28s} main process {rates[0]:6.1f}/s ({1000 / rates[0]:5.0f} ms per crop), "
                  f"1 worker {rates[1]:6.1f}/s ({1000 / rates[1]:5.0f} ms per crop)")

        print(f"\n2. a training step on this CPU ({args.model}-size random models, forward and backward of "
              f"{args.step_batch} crop(s)):")
        batch = [crops[(0, index)]["waveform"] for index in range(args.step_batch)]
        step_rates, gpu_rates = {}, {}
        for name, (module, forward, inputs) in models.items():
            prepared = inputs(batch)
            seconds = step_time(module, forward, prepared)
            step_rates[name] = args.step_batch / seconds
            one = {key: value[:1] for key, value in prepared.items()}
            gpu_rates[name] = ASSUMED_GPU_FLOPS / (3 * forward_flops(module, forward, one))
            loader = one_core[FEATURES[name]]
            print(f"  {name:10s} {seconds / args.step_batch:6.2f} s per crop: {step_rates[name]:5.2f} crops/s; the "
                  f"loader on one core is {loader / step_rates[name]:5.0f}x as fast")

        print(f"\n3. what a GPU step would need (estimate: {ASSUMED_GPU_FLOPS / 1e12:.0f} TFLOP/s sustained, a step = "
              f"3 forwards, at least {ASSUMED_STEP_FLOOR} s per step):")
        gpu_steps = {}
        for name, rate in gpu_rates.items():
            study = STUDY_BATCHES[name]
            gpu_steps[name] = max(study / rate, ASSUMED_STEP_FLOOR)
            needed = study / gpu_steps[name]
            loader = one_core[FEATURES[name]]
            print(f"  {name:10s} ({args.model}) step of {study} crops ~{gpu_steps[name]:.3f} s: {needed:5.0f} crops/s; "
                  f"at {loader:.1f} crops/s per core that takes {needed / loader:4.1f} workers (auto: at most "
                  f"{MAX_AUTO_WORKERS}); this CPU's step: {step_rates[name]:.2f} crops/s")

        print(f"\n4. loader and step together on this machine, batches of {args.batch} with MelHuBERT filter banks, "
              "steps per second (best of 2, alternated):")
        small = MelHuBERTModel(MelHuBERTConfig.small()).train()
        prepare = Features(FilterBankInputs(small.config))

        def cpu_step(inputs: dict[str, torch.Tensor]) -> None:
            melhubert_forward(small, inputs)[-1].pow(2).mean().backward()
            small.zero_grad(set_to_none=True)

        def gpu_like_step(inputs: dict[str, torch.Tensor]) -> None:
            time.sleep(gpu_steps["MelHuBERT"])  # the core idles while a GPU computes

        for label, step, steps in (
                (f"a CPU step (MelHuBERT small, {torch.get_num_threads()} threads)", cpu_step, 2),
                (f"a GPU-like step (the core idle {gpu_steps['MelHuBERT']:.3f} s)", gpu_like_step, args.batches)):
            loop = {0: 0.0, 1: 0.0}
            for workers in (0, 1, 1, 0):  # alternated, the best of each
                loader = iter(make_dataloader(crops, batch_size=args.batch, prepare=prepare, num_workers=workers))
                step(next(loader))  # warm-up, and the workers started
                start = time.perf_counter()
                for _ in range(steps):
                    step(next(loader))
                loop[workers] = max(loop[workers], steps / (time.perf_counter() - start))
            print(f"  {label:46s} num_workers 0: {loop[0]:5.2f}, 1: {loop[1]:5.2f} ({loop[1] / loop[0]:.2f}x)")

if __name__ == "__main__":
    main()
