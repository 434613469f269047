"""The distillation recipe against its references: S3PRL's distiller (s3prl/s3prl, ``s3prl/upstream/distiller`` and
``s3prl/pretrain/distiller``) for the prediction heads, the optimiser and the clipping; M2D-S's mixing ratio for the
denoising SNR. Each against an independent computation or the reference's documented behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import erf
from test_distill_parts import save_teacher

from speat_metric.distill.config import ConfigError, NoiseConfig, load_config
from speat_metric.distill.noise import NoiseSource, mix_ratio_for_snr, noise_mix_ratio, snr_db
from speat_metric.distill.objective import DistillationBatches
from speat_metric.distill.student import (
    DistillationModel,
    PredictionHeads,
    build_student,
    check_saved_heads,
    head_parameter_names,
    width,
)
from speat_metric.distill.train import parameter_groups
from speat_metric.training.models import load_trainable_encoder


def test_the_heads_have_s3prls_parameter_count_for_distilhuberts_size():
    width, targets = 768, 3
    # S3PRL model.py: nn.Linear(final_emb_size, inter_dim * n_tasks), GELU, SplitLinear(inter_dim, n_tasks, final_dim)
    # with inter_dim = final_emb_size = final_dim = 768; SplitLinear holds a (N, Din, Dout) weight and an N x Dout bias
    linear = width * (width * targets) + width * targets
    split_linear = targets * width * width + targets * width
    heads = PredictionHeads(width, width, targets)
    assert sum(parameter.numel() for parameter in heads.parameters()) == linear + split_linear == 3_543_552
    bound = width ** -0.5  # SplitLinear's initialisation: uniform in +-1/sqrt(Din)
    assert float(heads.split.weight.detach().abs().max()) <= bound
    assert float(heads.split.bias.detach().abs().max()) <= bound


def test_each_target_gets_its_own_two_layer_mlp_of_the_students_last_state():
    torch.manual_seed(3)
    student_width, teacher_width, targets = 5, 7, 3
    heads = PredictionHeads(student_width, teacher_width, targets)
    hidden = torch.randn(2, 4, student_width)
    with torch.no_grad():
        predictions = heads(hidden)
    assert [tuple(prediction.shape) for prediction in predictions] == [(2, 4, teacher_width)] * targets
    def array(tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().double().numpy()

    first_weight, first_bias, x = array(heads.expand.weight), array(heads.expand.bias), array(hidden)
    for target, prediction in enumerate(predictions):  # rows target*D:(target+1)*D of the first layer are target's
        rows = slice(target * student_width, (target + 1) * student_width)
        inner = x @ first_weight[rows].T + first_bias[rows]
        inner = 0.5 * inner * (1 + erf(inner / math.sqrt(2)))  # GELU, exact form
        expected = inner @ array(heads.split.weight[target]) + array(heads.split.bias[target])
        np.testing.assert_allclose(prediction.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_a_state_with_the_old_one_layer_heads_is_refused_with_one_line():
    old = ["student.encoder.layers.0.attention.q_proj.weight", "heads.heads.0.1.weight", "heads.heads.0.1.bias",
           "heads.heads.1.1.weight", "heads.heads.1.1.bias"]
    with pytest.raises(ValueError, match=r"^--resume run/state/step-2: the state holds prediction heads of another "
                                         r"layout \(heads.heads.0.1.bias, heads.heads.0.1.weight, \.\.\.\), saved "
                                         r"before .*start a new run with another --out[^\n]*$"):
        check_saved_heads(old, state="run/state/step-2")
    current = ["student.encoder.layers.0.attention.q_proj.weight", *sorted(head_parameter_names())]
    check_saved_heads(current, state="run/state/step-2")
    check_saved_heads([f"module.{name}" for name in current], state="run/state/step-2")  # saved by a DDP process


def test_weight_decay_spares_the_biases_and_shrinks_the_rest_by_lr_times_decay(tmp_path):
    teacher = load_trainable_encoder(str(save_teacher("hubert", tmp_path / "teacher")))
    model = DistillationModel(build_student(teacher, 1), teacher_width=width(teacher.encoder), num_targets=2)
    decayed, spared = parameter_groups(model, 0.01)
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    # S3PRL's get_grouped_parameters: no decay for names containing "bias" (its LayerNorm.* entries match nothing
    # here: the norms are called layer_norm, as in fairseq)
    assert {names[id(p)] for p in spared["params"]} == {name for name in names.values() if name.endswith(".bias")}
    assert {names[id(p)] for p in decayed["params"]} == {name for name in names.values()
                                                       if not name.endswith(".bias")}
    assert (decayed["weight_decay"], spared["weight_decay"]) == (0.01, 0.0)
    before = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.01), lr=0.5, betas=(0.9, 0.98), eps=1e-6)
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)  # Adam's step is then 0: only the decay moves a weight
    optimizer.step()
    for name, parameter in model.named_parameters():
        factor = 1.0 if name.endswith(".bias") else 1 - 0.5 * 0.01
        torch.testing.assert_close(parameter.detach(), before[name] * factor, rtol=1e-6, atol=0, msg=name)


def test_the_defaults_are_s3prls_distiller_runner_settings():
    config = load_config(teacher="t", data="d", out="o")
    # s3prl/pretrain/distiller/config_runner.yaml: gradient_clipping 5.0, lr 2.e-4, warmup_proportion 0.07,
    # betas [0.9, 0.98], eps 1.e-6, total_steps 200000, train_batch_size 24; config_model.yaml: sequence_length
    # 250000 samples; s3prl/optimizers.py: a weight decay of 0.01 in the parameter groups (replacing the 1.e-6)
    optimizer = config.optimizer
    assert (optimizer.gradient_clipping, optimizer.weight_decay, optimizer.lr, optimizer.warmup_proportion,
            tuple(optimizer.betas), optimizer.eps) == (5.0, 0.01, 2e-4, 0.07, (0.9, 0.98), 1e-6)
    assert (config.max_steps, config.training.batch_size, config.training.crop_seconds * 16_000) == (
        200_000, 24, 250_000)


@pytest.mark.parametrize("setting", [-3.0, 6.0, 12.0, 20.0])
def test_the_mixed_signals_measured_snr_equals_the_setting(setting):
    rng = np.random.default_rng(int(setting) + 10)
    speech = (0.05 * np.sin(np.arange(8000) / 7.0) * (1 + rng.standard_normal(8000))).astype(np.float32)
    settings = load_config(teacher="t", data="d", out="o", overrides={"noise.source": "synthetic",
                                                                       "noise.snr_db": setting}).noise
    batches = DistillationBatches(inputs=None, noise=NoiseSource.synthetic(), mix_ratio=noise_mix_ratio(settings))
    noisy = batches.noisy([speech], np.random.default_rng(5))[0].astype(np.float64)
    noise = NoiseSource.synthetic().sample(len(speech), np.random.default_rng(5)).astype(np.float64)  # the same draw
    # measure: write the mix as a * speech + b * noise (least squares), then compare the power of the two parts
    parts = np.stack([speech.astype(np.float64), noise], axis=1)
    (a, b), *_ = np.linalg.lstsq(parts, noisy, rcond=None)
    np.testing.assert_allclose(parts @ [a, b], noisy, atol=1e-5)  # nothing else is in the mix
    measured = 10 * math.log10(np.sum((a * parts[:, 0]) ** 2) / np.sum((b * parts[:, 1]) ** 2))
    assert measured == pytest.approx(setting, abs=1e-3)


def test_alpha_and_snr_convert_both_ways_and_alpha_02_is_12_db():
    assert snr_db(0.2) == pytest.approx(20 * math.log10(4))  # equal-RMS parts at 0.8 : 0.2 in amplitude
    for alpha in (0.05, 0.2, 0.5, 0.9):
        assert mix_ratio_for_snr(snr_db(alpha)) == pytest.approx(alpha)
    assert noise_mix_ratio(NoiseConfig(mix_ratio=0.3)) == 0.3


def test_the_noise_level_is_given_once(tmp_path):
    settings = {"teacher": "t", "data": "d", "out": "o"}
    assert noise_mix_ratio(load_config(**settings, overrides={"noise.snr_db": 6.0}).noise) == pytest.approx(
        mix_ratio_for_snr(6.0))
    both = tmp_path / "both.yaml"
    both.write_text("noise: {mix_ratio: 0.3, snr_db: 6}\n")
    with pytest.raises(ConfigError, match=r"--config .*both.yaml: noise.mix_ratio \(--mix-ratio\) and noise.snr_db"):
        load_config(**settings, path=both)
    with pytest.raises(ConfigError, match="the options: noise.mix_ratio .* both set the noise level; give one"):
        load_config(**settings, overrides={"noise.mix_ratio": 0.3, "noise.snr_db": 6.0})
    snr_file = tmp_path / "snr.yaml"
    snr_file.write_text("noise: {snr_db: 6}\n")
    assert load_config(**settings, path=snr_file).noise.snr_db == 6
    replaced = load_config(**settings, path=snr_file, overrides={"noise.mix_ratio": 0.3}).noise
    assert (replaced.snr_db, noise_mix_ratio(replaced)) == (None, 0.3), "--mix-ratio replaces the file's snr_db"
    for bad in (True, 500.0, "loud"):
        with pytest.raises(ConfigError, match=r"noise.snr_db \(--snr-db\) must be a number of dB between -100 and"):
            load_config(**settings, overrides={"noise.snr_db": bad})
