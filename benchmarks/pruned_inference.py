"""Pruned inference: a random base-size wav2vec 2.0 before and after each kind of pruning, on the same inputs.

Four models, all built in this run from one random ``Wav2Vec2Config()`` (95M parameters, the compute of the real
wav2vec2-base): the unpruned model; row-pruned to 512 FFN dimensions per layer (the end of the study's row
schedule); head-pruned to 72 heads (6 per layer, the end of the head schedule's first phase); and weight-pruned to
50% sparsity (masks made permanent: zeros in dense tensors). Each runs the same batch (four 6 s clips; then one
25 s clip, the length of a Speech Accent Archive reading) as ``speat evaluate`` runs it (every hidden state), after
a warm-up, in alternation, several times; the best time of each is reported with its ratio to the unpruned model,
for the whole forward and for the transformer layers alone (the CNN front end and the positional convolution are
not pruned). The weight-pruned model is dense, so its ratio (1.00x in a quiet run) shows the machine's noise.
Then the parameter counts.

Then training throughput, for the GPU-hour estimates of docs/pruning.md: seconds per training step (teacher
objective: student forward and backward, frozen teacher forward) of the base-size model on this machine's CPU, on
a small batch, and the floating-point operations of one step at the study's batch (12 crops of 15.625 s for
wav2vec2, 4 of 15 s for MelHuBERT), counted by ``torch.utils.flop_counter``. The GPU figures are extrapolated
from those counts at an assumed sustained GPU throughput: they are estimates, not measurements.

    .venv/bin/python benchmarks/pruned_inference.py [--skip-training]
"""

import argparse
import copy
import time

import numpy as np
import torch
import transformers
from torch.utils.flop_counter import FlopCounterMode

from speat_metric.adapters.melhubert import MelHuBERTConfig, MelHuBERTModel, melhubert_features
from speat_metric.pruning.objectives import hidden_state_loss
from speat_metric.pruning.structured import prune_heads, prune_rows
from speat_metric.pruning.weights import WeightMasks, prunable_parameters

BATCHES = ((4, 6), (1, 25))  # 6 s clips, and one 25 s clip (a Speech Accent Archive reading)
REPETITIONS = 5
ASSUMED_GPU_FLOPS = 30e12  # sustained mixed-precision FLOP/s assumed for one A100-class GPU (~10% of its bf16 peak)
ASSUMED_STEP_FLOOR = 0.05  # seconds: a small step is bound by kernel launches and data loading, not FLOPs
STUDY_STEPS = {"heads": 366_000, "rows": 510_000, "weights": 500_000}  # see docs/pruning.md for how they arise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-training", action="store_true", help="only the inference figures")
    args = parser.parse_args()
    torch.manual_seed(0)
    base = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config()).eval()
    models = {"unpruned": base}
    models["rows -> 512 per layer"] = copy.deepcopy(base)
    prune_rows(models["rows -> 512 per layer"], 3072 - 512)
    models["heads -> 72 (6 per layer)"] = copy.deepcopy(base)
    prune_heads(models["heads -> 72 (6 per layer)"], 6)
    models["weights 50% sparse"] = copy.deepcopy(base)
    WeightMasks(prunable_parameters(models["weights 50% sparse"])).prune_to(0.5)

    for clips, seconds in BATCHES:
        time_forward(models, clips, seconds)
    if not args.skip_training:
        training_throughput(base)


def time_forward(models: dict[str, torch.nn.Module], clips: int, seconds: int) -> None:
    """Best-of forward times of every model on one batch, with their ratios to the unpruned model."""
    inputs = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, (clips, seconds * 16_000)).astype(np.float32))
    with torch.inference_mode():
        features = {name: model.feature_projection(model.feature_extractor(inputs).transpose(1, 2))[0]
                    for name, model in models.items()}
    whole = {name: [] for name in models}
    layers = {name: [] for name in models}
    with torch.inference_mode():
        for model in models.values():  # warm-up, at full size
            model(inputs, output_hidden_states=True)
        names = list(models)
        for repetition in range(REPETITIONS):  # alternate, rotating the order, and keep each one's best
            for name in names[repetition % len(names):] + names[:repetition % len(names)]:
                model = models[name]
                start = time.perf_counter()
                model(inputs, output_hidden_states=True)
                whole[name].append(time.perf_counter() - start)
                start = time.perf_counter()
                model.encoder(features[name], output_hidden_states=True)
                layers[name].append(time.perf_counter() - start)
    print(f"\nrandom base-size wav2vec 2.0, {clips} clip(s) of {seconds} s in one batch, every hidden state, "
          f"{torch.get_num_threads()} torch threads, best of {REPETITIONS}")
    print(f"{'model':28} {'parameters':>12} {'nonzero':>12} {'forward':>9} {'ratio':>6} {'layers':>8} {'ratio':>6}")
    for name, model in models.items():
        count = sum(parameter.numel() for parameter in model.parameters())
        nonzero = sum(int((parameter != 0).sum()) for parameter in model.parameters())
        forward, encoder = min(whole[name]), min(layers[name])
        print(f"{name:28} {count:12,} {nonzero:12,} {forward:8.2f}s {forward / min(whole['unpruned']):5.2f}x"
              f" {encoder:7.2f}s {encoder / min(layers['unpruned']):5.2f}x")
    print("target: row-pruned (512 FFN dims) 'layers' <= 0.60x: the transformer layers alone, which row pruning "
          "shrinks (the CNN front end and the positional convolution are not pruned, so the whole forward gains "
          "less). Weight pruning leaves dense tensors (zeros): no faster without sparse kernels.")


def training_throughput(base: torch.nn.Module) -> None:
    """CPU seconds per teacher-objective step on a small batch, FLOPs per step at the study's batch, GPU estimate."""
    student, teacher = copy.deepcopy(base).train(), copy.deepcopy(base).eval().requires_grad_(False)
    student.config.layerdrop, student.config.apply_spec_augment = 0.0, False
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-5)

    def step(batch: torch.Tensor) -> None:
        with torch.no_grad():
            target = teacher(batch, output_hidden_states=True).hidden_states
        loss = hidden_state_loss(list(student(batch, output_hidden_states=True).hidden_states), list(target))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    small = torch.randn(2, 4 * 16_000) * 0.1
    step(small)  # warm-up
    times = []
    for _ in range(3):
        start = time.perf_counter()
        step(small)
        times.append(time.perf_counter() - start)
    with FlopCounterMode(display=False) as counter:
        step(small)
    cpu_rate = counter.get_total_flops() / min(times)
    print(f"\ntraining (teacher objective), base-size wav2vec 2.0 on this CPU: {min(times):.2f} s per step of 2 x 4 s "
          f"({counter.get_total_flops() / 1e12:.2f} TFLOP, {cpu_rate / 1e9:.0f} GFLOP/s achieved)")

    study = {"wav2vec2 (batch 12 x 15.625 s)": (base, torch.randn(1, 250_000) * 0.1, 12)}
    melhubert = MelHuBERTModel(MelHuBERTConfig.base())
    frames = torch.from_numpy(melhubert_features(np.zeros(240_000, np.float32), melhubert.config))[None]
    study["MelHuBERT base (batch 4 x 15 s)"] = (melhubert, frames, 4)
    for name, (model, one, batch) in study.items():
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            if isinstance(model, MelHuBERTModel):
                model(one, torch.ones(one.shape[:2], dtype=torch.bool))
            else:
                model(one, output_hidden_states=True)
        # forward + backward of the student (about 3 forwards) + the teacher's forward
        per_step = 4 * counter.get_total_flops() * batch
        cpu_hours = {method: steps * per_step / cpu_rate / 3600 for method, steps in STUDY_STEPS.items()}
        seconds = max(per_step / ASSUMED_GPU_FLOPS, ASSUMED_STEP_FLOOR)
        gpu_hours = {method: steps * seconds / 3600 for method, steps in STUDY_STEPS.items()}
        print(f"{name}: {per_step / 1e12:.1f} TFLOP per step; study schedules at this CPU's rate: "
              + ", ".join(f"{method} {hours:,.0f} h" for method, hours in cpu_hours.items()))
        print(f"  extrapolated ({seconds:.2f} s per step: an assumed {ASSUMED_GPU_FLOPS / 1e12:.0f} TFLOP/s per GPU, "
              f"at least {ASSUMED_STEP_FLOOR} s): "
              + ", ".join(f"{method} ~{hours:,.0f} GPU-h" for method, hours in gpu_hours.items()))


if __name__ == "__main__":
    main()
