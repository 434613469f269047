"""Distillation throughput: a 2-layer student of a random base-size wav2vec 2.0 teacher, on this machine's CPU.

The teacher is built in this run from ``Wav2Vec2Config()`` (95M parameters, the compute of the real wav2vec2-base); the
student is `speat_metric.distill.student.build_student` of it with DistilHuBERT's three heads (targets 4, 8, 12).
Printed:

1. Training steps per second on a batch of 4 s crops (``--batch``, default 4; the study's 24 does not fit a CPU's
patience), the step as `speat_metric.distill.train` runs it (teacher forward, student forward and backward, AdamW), and
the same step with the teacher's hidden states cached for the batch (computed once, reused), i.e. what the student alone
costs; the difference is the teacher's share of a step. Steps alternate and the best of each is kept.
2. Inference: the student's forward time (and FLOPs) against the teacher's on the same inputs, with every hidden
   state as ``speat evaluate`` asks for them (target: a 2-layer student at most 0.35x the teacher): the training
   batch, one 25 s clip (a Speech Accent Archive reading), and the same clip through a random MelHuBERT base and
   its 2-layer student (whose front end is one linear layer, where wav2vec2's is a 7-layer CNN that the student
   keeps whole).
3. GPU hours of the study's runs (200,000 steps of 24 crops of 15.625 s per student, Lin et al. 2024 / DistilHuBERT),
   extrapolated from this run's FLOP counts at the GPU throughput `pruned_inference` assumes: estimates, not
   measurements.

    .venv/bin/python benchmarks/distill_throughput.py [--batch 4] [--repetitions 5]
"""

import argparse
import time

import numpy as np
import torch
import transformers
from pruned_inference import ASSUMED_GPU_FLOPS, ASSUMED_STEP_FLOOR
from torch.utils.flop_counter import FlopCounterMode

from speat_metric.adapters.base import count_parameters
from speat_metric.adapters.melhubert import MelHuBERTConfig, MelHuBERTModel
from speat_metric.distill.objective import distillation_loss
from speat_metric.distill.student import DistillationModel, build_student, width
from speat_metric.formatting import format_parameters
from speat_metric.results import ModelDescription
from speat_metric.training.models import TrainableEncoder

TARGETS = (4, 8, 12)
STUDY_STEPS, STUDY_BATCH, STUDY_CROP = 200_000, 24, 15.625


def compare_inference(name: str, teacher: TrainableEncoder, inputs: dict[str, torch.Tensor], repetitions: int) -> None:
    """Forward times and FLOPs of a teacher and its 2-layer student on the same inputs, alternating."""
    modules = {"teacher": teacher.frozen_copy(), "student": build_student(teacher, 2).encoder.eval()}
    times: dict[str, list[float]] = {label: [] for label in modules}
    flops = {}
    with torch.no_grad():  # (inference_mode breaks the weight-normed positional convolution of a deep copy)
        for label, module in modules.items():
            with FlopCounterMode(display=False) as counter:
                teacher.hidden_states(module, inputs)  # also the warm-up
            flops[label] = counter.get_total_flops()
        for repetition in range(repetitions):
            for label in (list(modules) if repetition % 2 == 0 else list(modules)[::-1]):
                start = time.perf_counter()
                teacher.hidden_states(modules[label], inputs)
                times[label].append(time.perf_counter() - start)
    teacher_time, student_time = min(times["teacher"]), min(times["student"])
    print(f"  {name:26s} teacher {teacher_time * 1000:6.0f} ms, 2-layer student {student_time * 1000:6.0f} ms: "
          f"{student_time / teacher_time:.2f}x the time, {flops['student'] / flops['teacher']:.2f}x the FLOPs "
          "(target <= 0.35x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4, help="crops of 4 s per training step (default 4)")
    parser.add_argument("--repetitions", type=int, default=5, help="timed repetitions of each (default 5)")
    args = parser.parse_args()
    torch.manual_seed(0)
    base = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config())
    teacher = TrainableEncoder("random wav2vec2-base", "wav2vec2", base,
                               ModelDescription("random wav2vec2-base", "transformers", None, None,
                                                count_parameters(base), 13),
                               feature_extractor=transformers.Wav2Vec2FeatureExtractor())
    teacher_module = teacher.frozen_copy()
    student = build_student(teacher, 2)
    model = DistillationModel(student, teacher_width=width(base), num_targets=len(TARGETS)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4, betas=(0.9, 0.98), eps=1e-6)
    waveforms = list(np.random.default_rng(0).normal(0, 0.1, (args.batch, 4 * 16_000)).astype(np.float32))
    batch = teacher.inputs(waveforms)
    print(f"teacher {format_parameters(count_parameters(base))} parameters, 2-layer student "
          f"{format_parameters(count_parameters(student.encoder))} "
          f"(+ {format_parameters(count_parameters(model.heads))} in training-only heads); batch {args.batch} x 4 s; "
          f"{torch.get_num_threads()} threads")

    def teacher_targets() -> list[torch.Tensor]:
        with torch.no_grad():
            hidden_states = teacher.hidden_states(teacher_module, batch)
        return [hidden_states[target] for target in TARGETS]

    cached = teacher_targets()

    def step(targets: list[torch.Tensor] | None) -> None:
        loss, _ = distillation_loss(model(batch), targets if targets is not None else teacher_targets())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    step(None)  # warm-up
    times = {"teacher forward every step": [], "teacher cached for the batch": []}
    for repetition in range(args.repetitions):
        for name in (list(times) if repetition % 2 == 0 else list(times)[::-1]):
            start = time.perf_counter()
            step(None if name.startswith("teacher forward") else cached)
            times[name].append(time.perf_counter() - start)
    best = {name: min(values) for name, values in times.items()}
    print("\ntraining steps (best of each):")
    for name, seconds in best.items():
        print(f"  {name:32s} {1 / seconds:6.2f} steps/s  ({seconds:.2f} s per step)")
    full, alone = best.values()
    print(f"  the teacher's forward is {(full - alone) / full:.0%} of a step; caching it: {full / alone:.2f}x")

    print("\ninference on the same inputs (every hidden state, as speat evaluate), best of each:")
    clip = [np.random.default_rng(1).normal(0, 0.1, 25 * 16_000).astype(np.float32)]
    melhubert = TrainableEncoder("random MelHuBERT base", "melhubert", MelHuBERTModel(MelHuBERTConfig.base()),
                                 teacher.description)
    for name, kind, inputs in ((f"wav2vec2 base, {args.batch} x 4 s", teacher, batch),
                               ("wav2vec2 base, 1 x 25 s", teacher, teacher.inputs(clip)),
                               ("MelHuBERT base, 1 x 25 s", melhubert, melhubert.inputs(clip))):
        compare_inference(name, kind, inputs, args.repetitions)

    # The study's runs, extrapolated: one step = teacher forward + student forward and backward (~3 forwards).
    one = torch.randn(1, round(STUDY_CROP * 16_000)) * 0.1
    with FlopCounterMode(display=False) as teacher_count, torch.no_grad():
        teacher_module(one, output_hidden_states=True)
    with FlopCounterMode(display=False) as student_count, torch.no_grad():
        student.encoder(one, output_hidden_states=True)
    per_step = (teacher_count.get_total_flops() + 3 * student_count.get_total_flops()) * STUDY_BATCH
    seconds = max(per_step / ASSUMED_GPU_FLOPS, ASSUMED_STEP_FLOOR)
    print(f"\nthe study's step ({STUDY_BATCH} x {STUDY_CROP} s): {per_step / 1e12:.1f} TFLOP; at an assumed "
          f"{ASSUMED_GPU_FLOPS / 1e12:.0f} TFLOP/s per GPU {seconds:.2f} s per step, so {STUDY_STEPS:,} steps ~ "
          f"{STUDY_STEPS * seconds / 3600:,.0f} GPU-h per 2-layer student of a wav2vec2-base-size teacher (estimate); "
          f"Figure 3's 9 students (3 teachers x 2, 4, 6 layers) at most ~{9 * STUDY_STEPS * seconds / 3600:,.0f} "
          "GPU-h (deeper students cost a little more, MelHuBERT's much less)")


if __name__ == "__main__":
    main()
