"""The parts of a distillation: students copied from the teacher, the loss, the noisy inputs, the schedule, the
configuration. Each against an independent computation."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import transformers
from tiny_models import MELHUBERT, PRUNABLE_KINDS, PRUNABLE_SMALL

from speat_metric.adapters import load_encoder
from speat_metric.adapters.melhubert import (
    MelHuBERTConfig,
    MelHuBERTModel,
    load_melhubert_checkpoint,
    save_melhubert_checkpoint,
)
from speat_metric.distill.config import ConfigError, load_config, read_run_config
from speat_metric.distill.noise import NoiseSource, scaled_noise
from speat_metric.distill.objective import DistillationBatches, distillation_loss
from speat_metric.distill.report import report_markdown
from speat_metric.distill.student import DistillationModel, build_student, check_layers, width
from speat_metric.distill.train import (
    DistillationSteps,
    build_students,
    learning_rate,
    make_optimizer,
    student_random_stream,
)
from speat_metric.training.checkpoints import TrainerState
from speat_metric.training.loop import StepProgress, make_accelerator
from speat_metric.training.models import load_trainable_encoder

THREE_LAYERS = {**PRUNABLE_SMALL, "num_hidden_layers": 3}


def save_teacher(kind: str, directory: Path, *, seed: int = 0) -> Path:
    """A random 3-layer tiny model of `kind` (its norms randomised, so that a skipped norm would show)."""
    model_class, config_class, overrides = PRUNABLE_KINDS[kind]
    torch.manual_seed(seed)
    model = model_class(config_class(**{**THREE_LAYERS, **overrides}))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.LayerNorm, torch.nn.GroupNorm)) and module.weight is not None:
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
    model.save_pretrained(directory)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=False).save_pretrained(directory)
    return directory


def save_melhubert_teacher(path: Path) -> Path:
    torch.manual_seed(0)
    config = MelHuBERTConfig(**{**MELHUBERT.to_dict(), "encoder_layers": 3})
    save_melhubert_checkpoint(MelHuBERTModel(config), path)
    return path


def teacher_inputs(teacher, seconds: float = 0.4) -> dict[str, torch.Tensor]:
    waveforms = [np.random.default_rng(index).standard_normal(int(16_000 * seconds)).astype(np.float32) * 0.1
                 for index in range(2)]
    return teacher.inputs(waveforms)


@pytest.mark.parametrize("kind", [*PRUNABLE_KINDS, "melhubert"])
def test_a_student_reproduces_the_teachers_first_layers_exactly_before_training(kind, tmp_path):
    spec = (f"melhubert:{save_melhubert_teacher(tmp_path / 'teacher.ckpt')}" if kind == "melhubert"
            else str(save_teacher(kind, tmp_path / "teacher")))
    teacher = load_trainable_encoder(spec)
    before = copy.deepcopy(teacher.encoder.state_dict())
    student = build_student(teacher, 2)
    batch = teacher_inputs(teacher)
    teacher.encoder.eval()
    student.encoder.eval()
    with torch.no_grad():
        expected = teacher.hidden_states(teacher.encoder, batch)
        found = student.hidden_states(student.encoder, batch)
    assert len(expected) == 4 and len(found) == 3
    for layer in (0, 1, 2):  # the front end's output, then the first two transformer layers
        assert torch.equal(found[layer], expected[layer]), layer
    assert all(torch.equal(tensor, teacher.encoder.state_dict()[name]) for name, tensor in before.items()), \
        "building a student must leave the teacher as it was"


def test_a_random_student_differs_from_the_teacher_but_has_its_architecture(tmp_path):
    teacher = load_trainable_encoder(str(save_teacher("hubert", tmp_path / "teacher")))
    student = build_student(teacher, 2, init_from_teacher=False)
    copied = build_student(teacher, 2)
    assert {name: tuple(value.shape) for name, value in student.encoder.state_dict().items()} == {
        name: tuple(value.shape) for name, value in copied.encoder.state_dict().items()}
    layer = "encoder.layers.0.attention.q_proj.weight"
    assert not torch.equal(student.encoder.state_dict()[layer], copied.encoder.state_dict()[layer])


def test_students_deeper_than_the_teacher_or_targets_outside_it_are_refused_by_name(tmp_path):
    teacher = load_trainable_encoder(str(save_teacher("wav2vec2", tmp_path / "teacher")))
    check_layers(teacher, layers=(1, 2, 3), targets=(1, 3))
    with pytest.raises(ValueError, match=r"--layers 2,4: .* has 3 transformer layers, so 4 is out of range"):
        check_layers(teacher, layers=(2, 4), targets=(1,))
    with pytest.raises(ValueError, match=r"--targets 0,3,12: .* 0, 12 are out of range \(1 to 3\)"):
        check_layers(teacher, layers=(2,), targets=(0, 3, 12))


def test_the_loss_equals_an_independent_computation():
    rng = np.random.default_rng(4)
    predictions = [rng.standard_normal((2, 5, 3)) for _ in range(3)]
    targets = [rng.standard_normal((2, 5, 3)) for _ in range(3)]
    expected = []
    for prediction, target in zip(predictions, targets):
        l1 = np.abs(prediction - target).mean()
        cosines = [np.dot(p, t) / (np.linalg.norm(p) * np.linalg.norm(t))
                   for p, t in zip(prediction.reshape(-1, 3), target.reshape(-1, 3))]
        expected.append(0.5 * l1 + 2.0 * np.mean([math.log1p(math.exp(-cosine)) for cosine in cosines]))
    loss, per_target = distillation_loss([torch.tensor(p, dtype=torch.float32) for p in predictions],
                                         [torch.tensor(t, dtype=torch.float32) for t in targets],
                                         l1_weight=0.5, cosine_weight=2.0)
    assert float(loss) == pytest.approx(np.mean(expected), rel=1e-5)
    assert [float(value) for value in per_target] == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="2 predictions for 3 targets"):
        distillation_loss(predictions[:2], targets)


def test_students_trained_together_equal_students_trained_alone(tmp_path):
    """Joint training (each micro-batch through the teacher once, then every student) against one student at a
    time, over 2 optimiser steps of 2 micro-batches: the same heads, dropout, per-student gradient clipping (small
    enough to act, where one norm over both students would clip differently) and AdamW moments."""
    teacher = load_trainable_encoder(str(save_teacher("wav2vec2", tmp_path / "teacher")))
    config = load_config(teacher="t", data="d", out=tmp_path / "run", overrides={
        "layers": [1, 2], "targets": [1, 3], "training.max_steps": 2, "training.gradient_accumulation_steps": 2,
        "optimizer.gradient_clipping": 0.05, "optimizer.warmup_proportion": 0.0})
    accelerator = make_accelerator(project_dir=tmp_path, gradient_accumulation_steps=2, mixed_precision="no")
    teacher_module = teacher.frozen_copy()
    rng = np.random.default_rng(0)
    batches = [DistillationBatches(teacher.inputs)([(0.1 * rng.standard_normal(3200)).astype(np.float32)
                                                    for _ in range(2)], rng) for _ in range(4)]

    def train(layers: list[int]) -> dict[int, dict[str, torch.Tensor]]:
        accelerator.free_memory()
        students = build_students(teacher, config, layers)
        *models, optimizer = accelerator.prepare(*(student.model for student in students),
                                                 make_optimizer(students, config.optimizer))
        for student, model in zip(students, models):
            student.model = model.train()
        steps = DistillationSteps(accelerator, students, optimizer, teacher=teacher, teacher_module=teacher_module,
                                  config=config, bar=StepProgress(2, desc="steps", enabled=False))
        state = TrainerState()
        assert [steps(batch, state) is not None for batch in batches] == [False, True] * 2
        assert state.step == 2
        return {student.layers: {name: value.detach().clone() for name, value in student.model.state_dict().items()}
                for student in students}

    together = train([1, 2])
    alone = {**train([1]), **train([2])}
    initial = {student.layers: student.model.state_dict() for student in build_students(teacher, config)}
    for layers in (1, 2):
        assert set(together[layers]) == set(alone[layers])
        for name, value in alone[layers].items():
            assert torch.allclose(together[layers][name], value, rtol=0, atol=1e-6), (layers, name)
        assert not torch.equal(together[layers]["heads.expand.weight"], initial[layers]["heads.expand.weight"])
    # dropout acts in the students, so each must draw from its own stream to match
    student = build_students(teacher, config, [2])[0].model.train()
    outputs = []
    for seed in (0, 1):
        with torch.no_grad(), student_random_stream(seed, 0, 2, (0, 0), torch.device("cpu")):
            outputs.append(student(batches[0]["student"])[0])
    assert not torch.equal(*outputs)


def test_the_learning_rate_follows_transformers_linear_schedule_with_warmup():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=2e-4)
    scheduler = transformers.get_linear_schedule_with_warmup(optimizer, num_warmup_steps=7, num_training_steps=100)
    for step in range(100):
        assert learning_rate(step, peak=2e-4, warmup_steps=7, total_steps=100) == pytest.approx(
            scheduler.get_last_lr()[0], abs=1e-12), step
        optimizer.step()
        scheduler.step()


def test_the_student_hears_the_speech_mixed_with_the_noise_at_the_ratio_and_the_teacher_the_clean_speech(tmp_path):
    teacher = load_trainable_encoder(str(save_teacher("wav2vec2", tmp_path / "teacher")))  # do_normalize=False:
    rng = np.random.default_rng(1)                                                        # inputs are waveforms
    waveforms = [(0.3 * rng.standard_normal(3200)).astype(np.float32) for _ in range(2)]
    (tmp_path / "noise").mkdir()
    soundfile.write(tmp_path / "noise" / "hum.wav", (0.01 * np.sin(np.arange(8000) / 3)).astype(np.float32), 8000)
    for source in (NoiseSource.synthetic(), NoiseSource.folder(tmp_path / "noise", progress=False)):
        batches = DistillationBatches(teacher.inputs, source, 0.25)
        batch = batches(waveforms, np.random.default_rng(9))
        replay = np.random.default_rng(9)
        noises = [source.sample(len(waveform), replay) for waveform in waveforms]
        assert torch.equal(batch["teacher"]["input_values"], torch.from_numpy(np.stack(waveforms)))
        for index, (waveform, noise) in enumerate(zip(waveforms, noises)):
            scaled = noise * np.sqrt(np.mean(waveform.astype(np.float64) ** 2) / np.mean(noise.astype(np.float64) ** 2))
            student = batch["student"]["input_values"][index].numpy()
            np.testing.assert_allclose(student - 0.75 * waveform, 0.25 * scaled, atol=1e-6)
            assert np.sqrt(np.mean(scaled_noise(waveform, noise) ** 2)) == pytest.approx(
                np.sqrt(np.mean(waveform ** 2)), rel=1e-5)
        assert not np.allclose(noises[0], noises[1]), "each crop gets its own noise"
    clean = DistillationBatches(teacher.inputs)(waveforms, np.random.default_rng(9))
    assert torch.equal(clean["student"]["input_values"], clean["teacher"]["input_values"])


def test_a_noise_folder_without_usable_recordings_is_refused_by_name(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"--noise .*empty: the folder has no"):
        NoiseSource.folder(tmp_path / "empty", progress=False)
    with pytest.raises(ValueError, match=r"--noise .*missing: no such folder"):
        NoiseSource.from_setting(str(tmp_path / "missing"))


@pytest.mark.parametrize("kind", ["hubert", "melhubert"])
def test_the_saved_student_has_no_heads_and_reloads_with_identical_outputs(kind, tmp_path):
    spec = (f"melhubert:{save_melhubert_teacher(tmp_path / 'teacher.ckpt')}" if kind == "melhubert"
            else str(save_teacher(kind, tmp_path / "teacher")))
    teacher = load_trainable_encoder(spec)
    student = build_student(teacher, 1)
    model = DistillationModel(student, teacher_width=width(teacher.encoder), num_targets=2)
    with torch.no_grad():  # as if trained: the copy from the teacher no longer explains the weights
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    path = student.save(tmp_path / "student", 5)
    batch = teacher_inputs(teacher)
    model.eval()
    with torch.no_grad():
        expected = student.hidden_states(student.encoder, batch)
        if kind == "melhubert":
            keys = set(torch.load(path, weights_only=True)["model"])
            reloaded = load_melhubert_checkpoint(path)
            found = reloaded(batch["features"], batch["frame_mask"])
        else:
            keys = set(__import__("safetensors.torch").torch.load_file(path / "model.safetensors"))
            reloaded = transformers.AutoModel.from_pretrained(path).eval()
            found = list(reloaded(batch["input_values"], output_hidden_states=True).hidden_states)
    assert not any("heads" in key for key in keys)
    assert keys == set(student.encoder.state_dict())
    assert len(found) == len(expected) == 2
    for tensor, reference in zip(found, expected):
        assert torch.equal(tensor, reference)
    adapter = load_encoder(student.checkpoint_spec(path))
    assert adapter.description.num_layers == 2  # speat evaluate reads it as an ordinary 1-layer model


def test_the_study_config_and_bad_settings():
    study = load_config(teacher="t", data="d", out="o", path="study")
    assert (study.layers, study.targets, study.optimizer.lr, study.training.batch_size) == ((2, 4, 6), (4, 12), 2e-4,
                                                                                             24)
    default = load_config(teacher="t", data="d", out="o")
    assert (default.targets, default.warmup_steps, default.checkpoint_steps(), default.joint) == (
        (4, 8, 12), 14_000, [50_000, 100_000, 150_000, 200_000], True)
    assert load_config(teacher="t", data="d", out="o", overrides={"layers": "2,4", "training.max_steps": 10,
                                                                   "checkpoint_every": 4}).checkpoint_steps() == [4, 8,
                                                                                                                  10]
    for overrides, message in (({"layers": [2, 2]}, "layers .* repeats a layer"),
                               ({"targets": []}, "targets .* is empty"),
                               ({"noise.mix_ratio": 1.5}, r"noise.mix_ratio \(--mix-ratio\) must be between 0 and 1"),
                               ({"optimizer.warmup_proportion": 1.0}, "warmup_proportion must be in"),
                               ({"layers": "2,x"}, "layers must be a comma-separated list of ints"),
                               ({"joint": "yes"}, r"joint \(--joint, --no-joint\) must be true or false, got 'yes'")):
        with pytest.raises(ConfigError, match=message):
            load_config(teacher="t", data="d", out="o", overrides=overrides)


def test_a_run_saved_before_joint_training_resumes_one_student_after_the_other(tmp_path):
    saved = load_config(teacher="t", data="d", out="o", overrides={"layers": [2, 4]}).to_yaml()
    assert "joint: true" in saved
    (tmp_path / "new.yaml").write_text(saved)
    (tmp_path / "old.yaml").write_text(saved.replace("joint: true\n", ""))
    assert read_run_config(tmp_path / "new.yaml").joint is True
    assert read_run_config(tmp_path / "old.yaml").joint is False


def test_the_report_table_writes_d_and_its_interval_as_every_table_does():
    row = {"test": "gender", "synthetic": False, "ci_low": None, "ci_high": None}
    rows = [{**row, "model": "base", "layers": None, "d": -0.004, "ci_low": -0.6154, "ci_high": 0.6},
            {**row, "model": "1 layer", "layers": 1, "d": 0.3125},
            {**row, "model": "2 layers", "layers": 2, "d": -1.0612, "ci_low": -1.5, "ci_high": -0.5349}]
    assert report_markdown(rows).splitlines()[-1] == ("| gender | +0.00 [-0.62, +0.60] | +0.31 | "
                                                      "-1.06 [-1.50, -0.53] |")
