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
4. Joint students: training steps per second of one run of 2, 4 and 6-layer students trained together (each batch
   through the teacher once, `speat_metric.distill.train.DistillationSteps` over the three) against three runs of one
   student each (the same steps, one student per run: the teacher once per run), side by side, and the teacher
   forward's share of each. A small random teacher (wav2vec 2.0's CNN front end, 12 layers of width 384) on 2 crops
   of 2 s, so that this part alone takes about a minute on a CPU (``--joint-only``).

    .venv/bin/python benchmarks/distill_throughput.py [--batch 4] [--repetitions 5] [--joint-only]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from pruned_inference import ASSUMED_GPU_FLOPS, ASSUMED_STEP_FLOOR
from torch.utils.flop_counter import FlopCounterMode

from speat_metric.adapters.base import count_parameters
from speat_metric.adapters.melhubert import MelHuBERTConfig, MelHuBERTModel
from speat_metric.distill.config import load_config
from speat_metric.distill.objective import DistillationBatches, distillation_loss
from speat_metric.distill.student import DistillationModel, build_student, width
from speat_metric.distill.train import DistillationSteps, build_students, make_optimizer
from speat_metric.formatting import format_parameters
from speat_metric.results import ModelDescription
from speat_metric.training.checkpoints import TrainerState
from speat_metric.training.loop import StepProgress, make_accelerator
from speat_metric.training.models import MelHuBERTTrainable, TrainableEncoder, TransformersTrainable

TARGETS = (4, 8, 12)
STUDY_STEPS, STUDY_BATCH, STUDY_CROP = 200_000, 24, 15.625
JOINT_LAYERS = (2, 4, 6)
JOINT_CROP = 1  # seconds, 2 crops per step: small, so that many alternations fit in a minute on a busy CPU


def random_teacher(name: str, config: transformers.Wav2Vec2Config) -> TrainableEncoder:
    """A randomly initialised wav2vec 2.0 teacher of `config` (seeded by the caller)."""
    model = transformers.Wav2Vec2Model(config)
    return TransformersTrainable(name, "wav2vec2", model,
                            ModelDescription(name, "transformers", None, None, count_parameters(model),
                                             config.num_hidden_layers + 1),
                            feature_extractor=transformers.Wav2Vec2FeatureExtractor())


def compare_joint(repetitions: int) -> None:
    """Part 4: one run of three students trained together against three runs of one student each."""
    torch.manual_seed(0)
    # wav2vec 2.0 base at half width, CNN channels included, so that the front end's share of the compute stays
    # about the base model's (both scale with the square of the width)
    teacher = random_teacher("random wav2vec2 at half width", transformers.Wav2Vec2Config(
        hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536, conv_dim=(256,) * 7))
    with tempfile.TemporaryDirectory() as directory:
        config = load_config(teacher=teacher.spec, data="-", out=Path(directory), overrides={
            "layers": list(JOINT_LAYERS), "targets": list(TARGETS), "training.max_steps": 1000,
            "training.mixed_precision": "no"})
        accelerator = make_accelerator(project_dir=Path(directory), mixed_precision="no")
    teacher_module = teacher.frozen_copy()
    waveforms = list(np.random.default_rng(0).normal(0, 0.1, (2, JOINT_CROP * 16_000)).astype(np.float32))
    batch = DistillationBatches(teacher.inputs)(waveforms, np.random.default_rng(0))

    def run(layers: tuple[int, ...]) -> tuple[DistillationSteps, TrainerState]:
        """The steps of a run of `layers` (prepared as `speat_metric.distill.train` prepares them)."""
        students = build_students(teacher, config, layers)
        *models, optimizer = accelerator.prepare(*(student.model for student in students),
                                                 make_optimizer(students, config.optimizer))
        for student, model in zip(students, models):
            student.model = model.train()
        return DistillationSteps(accelerator, students, optimizer, teacher=teacher, teacher_module=teacher_module,
                                 config=config, bar=StepProgress(None, desc="", enabled=False)), TrainerState()

    runs = {"together": run(JOINT_LAYERS), **{f"{layers} layers alone": run((layers,)) for layers in JOINT_LAYERS}}
    times: dict[str, list[float]] = {name: [] for name in [*runs, "teacher forward"]}
    for name, (steps, state) in runs.items():  # warm-up
        steps(batch, state)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # CPU time of one thread: what other processes on the machine do does not enter
    for repetition in range(repetitions):
        for name in (list(times) if repetition % 2 == 0 else list(times)[::-1]):
            start = time.process_time()
            if name == "teacher forward":
                runs["together"][0].teacher_targets(batch)
            else:
                runs[name][0](batch, runs[name][1])
            times[name].append(time.process_time() - start)
    torch.set_num_threads(threads)
    alone = [f"{layers} layers alone" for layers in JOINT_LAYERS]
    # each round's three separate steps against its joint step: a load that drifts over the run cancels out
    speedups = [sum(times[name][index] for name in alone) / times["together"][index] for index in range(repetitions)]
    best = {name: min(values) for name, values in times.items()}
    separate, together, teacher_time = sum(best[name] for name in alone), best["together"], best["teacher forward"]
    print(f"\njoint students ({', '.join(map(str, JOINT_LAYERS))} layers) of a {teacher.spec}, "
          f"{format_parameters(teacher.base_parameters)} parameters, 2 x {JOINT_CROP} s crops, best of "
          f"{repetitions}, CPU seconds of one thread:")
    for name in runs:
        print(f"  {name:18s} {best[name]:6.2f} s per step  {1 / best[name]:6.2f} steps/s")
    print(f"  three separate runs, a step of each: {separate:.2f} s, {1 / separate:.2f} steps/s of all three students; "
          f"trained together: {together:.2f} s, {1 / together:.2f} steps/s: {separate / together:.2f}x as fast "
          f"(median of the rounds {statistics.median(speedups):.2f}x, range {min(speedups):.2f} to "
          f"{max(speedups):.2f})")
    print(f"  the teacher's forward: {teacher_time:.2f} s, {teacher_time / together:.0%} of a joint step, "
          f"{3 * teacher_time / separate:.0%} of the three separate runs' steps (it runs once in each)")


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
    parser.add_argument("--joint-only", action="store_true",
                        help="only part 4: students trained together against separate runs (about a minute)")
    args = parser.parse_args()
    if args.joint_only:
        compare_joint(args.repetitions)
        return
    torch.manual_seed(0)
    teacher = random_teacher("random wav2vec2-base", transformers.Wav2Vec2Config())
    base = teacher.encoder
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
    melhubert = MelHuBERTTrainable("random MelHuBERT base", "melhubert", MelHuBERTModel(MelHuBERTConfig.base()),
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
    compare_joint(args.repetitions)


if __name__ == "__main__":
    main()
