"""Tests of speat_metric.adapters.m2d: ViT blocks against torch's own layer, patches and positions recomputed by
hand, the authors' checkpoint formats, chunking of long clips, padding invariance and error messages."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch
from tiny_models import randomise_layer_norms, tone_in_noise
from torch import nn

from speat_metric import features
from speat_metric.adapters.base import ModelLoadError, count_parameters, weights_sha256
from speat_metric.adapters.m2d import (
    DEFAULT_NORM_STATS,
    M2DConfig,
    M2DEncoder,
    M2DEncoderModel,
    load_m2d_checkpoint,
    parse_folder_name,
    sincos_position_embedding,
)

SPEECH = M2DConfig(input_size=(80, 16), patch_size=(80, 2), embed_dim=32, depth=2, num_heads=4)
GENERAL = M2DConfig(input_size=(80, 32), patch_size=(16, 16), embed_dim=16, depth=2, num_heads=2)


def random_model(config: M2DConfig, seed: int = 0, norm_stats=DEFAULT_NORM_STATS) -> M2DEncoderModel:
    torch.manual_seed(seed)
    return randomise_layer_norms(M2DEncoderModel(config, norm_stats=norm_stats).eval())


def waveform(seconds: float, seed: int) -> np.ndarray:
    return tone_in_noise(seconds, 200 + 70 * seed, seed)


def pretraining_state(model: M2DEncoderModel, *, with_norm_stats: bool = True) -> dict[str, torch.Tensor]:
    """An M2D-S pre-training state dict (models_mae.M2D_S_ViT): online encoder plus the parts the runtime drops."""
    config = model.config
    state = {key: tensor.clone() for key, tensor in model.state_dict().items()}
    if not with_norm_stats:
        del state["norm_stats"]
    width, decoder = config.embed_dim, 8
    for key, tensor in list(state.items()):
        if key.startswith("blocks."):
            state["target_" + key] = tensor + 1.0  # target encoder: an EMA copy, different values
    state["target_norm.weight"], state["target_norm.bias"] = torch.ones(width), torch.zeros(width)
    state["mask_token"] = torch.zeros(1, 1, decoder)
    state["decoder_embed.weight"], state["decoder_embed.bias"] = torch.zeros(decoder, width), torch.zeros(decoder)
    state["decoder_pos_embed"] = torch.zeros(1, 1 + config.grid_size[0] * config.grid_size[1], decoder)
    state["decoder_blocks.0.norm1.weight"] = torch.ones(decoder)
    state["decoder_norm.weight"] = torch.ones(decoder)
    state["decoder_pred.weight"], state["decoder_pred.bias"] = torch.zeros(width, decoder), torch.zeros(width)
    state["offline_predictor.weight"] = torch.zeros(width, config.frame_dim)
    state["offline_predictor.bias"] = torch.zeros(width)
    return state


def save_pretraining_checkpoint(folder, model: M2DEncoderModel, **kwargs):
    """``misc.save_model`` layout: model, optimizer, epoch, scaler and the argparse.Namespace of arguments."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "checkpoint-1000.pth"
    torch.save({"model": pretraining_state(model, **kwargs), "optimizer": {"state": {}, "param_groups": []},
                "epoch": 1000, "scaler": {"scale": 65536.0},
                "args": argparse.Namespace(model="m2d_s_vit_base", input_size=list(model.config.input_size),
                                           patch_size=list(model.config.patch_size), norm_stats=None)}, path)
    return path


# ---------------------------------------------------------------------------------------------------------------
# Configuration, folder names, positions


def test_released_geometries():
    speech, general = M2DConfig.m2d_s(), M2DConfig.m2d()
    assert (speech.grid_size, speech.frame_dim, speech.frame_period_ms) == ((1, 304), 768, 20)
    assert (general.grid_size, general.frame_dim, general.frame_period_ms) == ((5, 38), 5 * 768, 160)
    assert speech.embed_dim == 768 and speech.depth == 12 and speech.num_heads == 12 and speech.mlp_dim == 3072


def test_config_errors_name_the_values():
    with pytest.raises(ValueError, match=r"input_size \(80, 15\) must be a whole number of patches \(80, 2\)"):
        M2DConfig(input_size=(80, 15))
    with pytest.raises(ValueError, match=r"embed_dim \(30\) must be divisible by num_heads \(4\)"):
        M2DConfig(embed_dim=30, num_heads=4)


@pytest.mark.parametrize("name, expected", [
    ("m2d_s_vit_base-80x608p80x2-230220", ("m2d_s_vit_base", (80, 608), (80, 2), 16_000)),
    ("m2d_vit_base-80x608p16x16-221006-mr7", ("m2d_vit_base", (80, 608), (16, 16), 16_000)),
    ("m2d_vit_base-80x1001p16x16p32k-240301", ("m2d_vit_base", (80, 1001), (16, 16), 32_000)),
    ("m2d_clap_vit_base-80x1001p16x16p16kpBpTI-2025", ("m2d_clap_vit_base", (80, 1001), (16, 16), 16_000)),
    ("m2d_vit_base-80x200p16x4", ("m2d_vit_base", (80, 200), (16, 4), 16_000)),
])
def test_folder_names_parse_like_the_runtime(name, expected):
    parsed = parse_folder_name(name)
    assert (parsed["model"], parsed["input_size"], parsed["patch_size"], parsed["sample_rate"]) == expected


@pytest.mark.parametrize("name", ["checkpoint-300", "weights", "m2d-80x608"])
def test_other_names_are_not_parsed(name):
    assert parse_folder_name(name) is None


def test_sincos_positions_follow_the_mae_formula():
    width, rows, cols = 16, 3, 5
    table = sincos_position_embedding(width, (rows, cols)).numpy()
    assert table.shape == (1 + rows * cols, width) and np.all(table[0] == 0)
    quarter = width // 4
    for row in range(rows):
        for col in range(cols):
            patch = table[1 + row * cols + col]
            for k in range(quarter):
                omega = 10000.0 ** (-k / quarter)
                expected = [math.sin(col * omega), math.cos(col * omega), math.sin(row * omega), math.cos(row * omega)]
                actual = [patch[k], patch[quarter + k], patch[2 * quarter + k], patch[3 * quarter + k]]
                np.testing.assert_allclose(actual, expected, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# Model against independent computations


def test_block_equals_torch_pre_ln_transformer_layer():
    model = random_model(SPEECH, seed=1).double()
    block = model.blocks[0]
    reference = nn.TransformerEncoderLayer(32, 4, dim_feedforward=128, dropout=0.0, activation="gelu",
                                           layer_norm_eps=1e-6, batch_first=True, norm_first=True).double()
    with torch.no_grad():
        reference.self_attn.in_proj_weight.copy_(block.attn.qkv.weight)  # timm's qkv rows are [q; k; v]
        reference.self_attn.in_proj_bias.copy_(block.attn.qkv.bias)
        reference.self_attn.out_proj.load_state_dict(block.attn.proj.state_dict())
        reference.linear1.load_state_dict(block.mlp.fc1.state_dict())
        reference.linear2.load_state_dict(block.mlp.fc2.state_dict())
        reference.norm1.load_state_dict(block.norm1.state_dict())
        reference.norm2.load_state_dict(block.norm2.state_dict())
    reference.eval()
    torch.manual_seed(2)
    x = torch.randn(2, 7, 32, dtype=torch.float64)
    valid = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    expected = reference(x, src_key_padding_mask=~valid)
    with torch.no_grad():
        actual = block(x, valid[:, None, :])
    torch.testing.assert_close(actual[valid], expected[valid], rtol=1e-10, atol=1e-10)


def test_patch_embedding_layer_recomputed_patch_by_patch():
    model = random_model(GENERAL, seed=3).double()
    torch.manual_seed(4)
    spectrogram = torch.randn(1, 80, 32, dtype=torch.float64)
    with torch.no_grad():
        frames = model(spectrogram)[0][0]  # (time patches, 5 * 16)
    weight = model.patch_embed.proj.weight.reshape(16, -1)
    assert frames.shape == (2, 5 * 16)
    for t in range(2):
        expected = []
        for f in range(5):
            patch = spectrogram[0, 16 * f: 16 * (f + 1), 16 * t: 16 * (t + 1)].reshape(-1)
            expected.append(weight @ patch + model.patch_embed.proj.bias + model.pos_embed[0, 1 + f * 2 + t])
        torch.testing.assert_close(frames[t], torch.cat(expected), rtol=1e-10, atol=1e-10)


def test_layers_cls_token_and_final_norm():
    """Recompute all hidden states with the blocks called one by one; the last passes through the final norm."""
    model = random_model(SPEECH, seed=5).double()
    torch.manual_seed(6)
    spectrogram = torch.randn(2, 80, 10, dtype=torch.float64)  # a short chunk: 5 of 8 time patches
    with torch.no_grad():
        layers = model(spectrogram)
        patches = model.patch_embed.proj(spectrogram[:, None]).flatten(2).transpose(1, 2) + model.pos_embed[:, 1:6]
        x = torch.cat([(model.cls_token + model.pos_embed[:, :1]).expand(2, -1, -1), patches], dim=1)
        expected = [patches]
        everything = torch.ones(2, 1, 6, dtype=torch.bool)
        for block in model.blocks:
            x = block(x, everything)
            expected.append(x[:, 1:])
        expected[-1] = model.norm(x)[:, 1:]
    assert len(layers) == SPEECH.depth + 1
    for actual, wanted in zip(layers, expected):
        torch.testing.assert_close(actual, wanted, rtol=1e-10, atol=1e-10)


def test_masked_time_patches_do_not_change_real_ones():
    model = random_model(GENERAL, seed=7).double()
    torch.manual_seed(8)
    short = torch.randn(1, 80, 16, dtype=torch.float64)
    padded = torch.cat([short, torch.randn(1, 80, 16, dtype=torch.float64)], dim=2)
    with torch.no_grad():
        alone = model(short)
        masked = model(padded, torch.tensor([1]))
    for single, batch in zip(alone, masked):
        torch.testing.assert_close(batch[:, :1], single, rtol=1e-10, atol=1e-10)


def test_random_initialisation_is_reproducible_and_mae_like():
    state = torch.random.get_rng_state()
    first = M2DEncoder.from_config(SPEECH, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert first.description.weights_sha256 == M2DEncoder.from_config(SPEECH, seed=1).description.weights_sha256
    assert first.description.weights_sha256 != M2DEncoder.from_config(SPEECH, seed=2).description.weights_sha256
    qkv = first.model.blocks[0].attn.qkv.weight
    bound = math.sqrt(6.0 / (32 + 96))  # xavier_uniform
    assert qkv.abs().max() <= bound and qkv.abs().max() > 0.9 * bound
    torch.testing.assert_close(first.model.pos_embed[0], sincos_position_embedding(32, (1, 8)))


# ---------------------------------------------------------------------------------------------------------------
# Checkpoint formats


@pytest.mark.parametrize("config, folder", [(SPEECH, "m2d_s_vit_base-80x16p80x2-230220"),
                                            (GENERAL, "m2d_vit_base-80x32p16x16-221006-mr7")])
def test_pretraining_checkpoint_loads_the_online_encoder(tmp_path, config, folder):
    source = random_model(config, seed=9, norm_stats=(-9.5, 3.5))
    path = save_pretraining_checkpoint(tmp_path / folder, source)
    loaded = load_m2d_checkpoint(path, num_heads=config.num_heads)  # narrower than real 64-dim heads
    assert loaded.config == config and not loaded.training
    assert loaded.norm_stats.tolist() == [-9.5, 3.5]
    torch.manual_seed(10)
    spectrogram = torch.randn(2, 80, config.chunk_frames)
    with torch.no_grad():
        for expected, actual in zip(source(spectrogram), loaded(spectrogram)):
            assert torch.equal(expected, actual)


def test_old_checkpoints_without_norm_stats_use_the_runtime_default(tmp_path):
    source = random_model(SPEECH, seed=11, norm_stats=(-1.0, 1.0))
    path = save_pretraining_checkpoint(tmp_path / "m2d_s_vit_base-80x16p80x2-230201", source, with_norm_stats=False)
    encoder = M2DEncoder.from_checkpoint(path, num_heads=4)
    assert encoder.norm_stats == DEFAULT_NORM_STATS
    overridden = M2DEncoder.from_checkpoint(path, num_heads=4, norm_stats=(-10.5, 4.4))
    assert overridden.description.settings["norm_stats"] == [-10.5, 4.4]
    clip = waveform(0.3, seed=1)
    np.testing.assert_allclose(overridden.log_mel(clip) * 4.4 - 10.5, encoder.log_mel(clip) * 4.2 - 7.1, atol=1e-4)


@pytest.mark.parametrize("prefix, outside", [("", {}), ("module.", {}),
                                             ("module.ar.runtime.backbone.", {"module.head.mlp.mlp.0.weight": 1})])
def test_encoder_only_and_prefixed_state_dicts(tmp_path, prefix, outside):
    source = random_model(SPEECH, seed=12)
    state = {prefix + key: tensor for key, tensor in source.state_dict().items()}
    state.update({key: torch.zeros(value) for key, value in outside.items()})
    path = tmp_path / "m2d_s_vit_base-80x16p80x2-230220_enconly.pth"  # no folder convention: file stem is used
    torch.save(state if not prefix else {"model": state}, path)
    assert weights_sha256(load_m2d_checkpoint(path, num_heads=4)) == weights_sha256(source)


def test_geometry_without_a_conventional_name_comes_from_shapes(tmp_path):
    source = random_model(M2DConfig(input_size=(80, 24), patch_size=(40, 4), embed_dim=64, depth=3, num_heads=1))
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    loaded = load_m2d_checkpoint(path)
    assert (loaded.config.input_size, loaded.config.patch_size, loaded.config.depth) == ((80, 24), (40, 4), 3)
    assert loaded.config.num_heads == 1  # 64-dim heads
    assert load_m2d_checkpoint(path, num_heads=4).config.num_heads == 4


def test_bad_files_are_named_with_what_is_wrong(tmp_path):
    with pytest.raises(ModelLoadError, match=r"M2D checkpoint '.*nothing\.pth' does not exist"):
        load_m2d_checkpoint(tmp_path / "nothing.pth")
    other = tmp_path / "melhubert.ckpt"
    torch.save({"model": {"encoder.layer_norm.weight": torch.ones(3)}, "Upstream_Config": {}}, other)
    with pytest.raises(ModelLoadError, match=r"'.*melhubert\.ckpt' is not an M2D checkpoint: no "
                                             r"'patch_embed\.proj\.weight' tensor among its keys "
                                             r"\(encoder\.layer_norm\.weight\)"):
        load_m2d_checkpoint(other)
    torch.save([1, 2, 3], other)
    with pytest.raises(ModelLoadError, match=r"is not an M2D checkpoint: expected a state dict.*found list"):
        load_m2d_checkpoint(other)


def test_unexpected_and_missing_encoder_keys_are_listed(tmp_path):
    state = random_model(SPEECH).state_dict()
    state["blocks.0.ls1.gamma"] = torch.ones(32)  # a layer-scale ViT is a different architecture
    del state["norm.weight"]
    path = tmp_path / "m2d_s_vit_base-80x16p80x2-230220" / "checkpoint-1.pth"
    path.parent.mkdir()
    torch.save({"model": state}, path)
    with pytest.raises(ModelLoadError, match=r"missing keys: norm\.weight; unexpected keys: blocks\.0\.ls1\.gamma"):
        load_m2d_checkpoint(path, num_heads=4)
    with pytest.raises(ModelLoadError, match=r"embed dim 32 is not a multiple of the 64-dim heads .* pass num_heads="):
        load_m2d_checkpoint(path)


def test_folder_name_must_agree_with_the_tensors_and_be_16k(tmp_path):
    model = random_model(SPEECH)
    path = save_pretraining_checkpoint(tmp_path / "m2d_s_vit_base-80x608p80x2-230220", model)
    with pytest.raises(ModelLoadError, match=r"folder name says input \(80, 608\) and patches \(80, 2\), but the "
                                             r"tensors imply input \(80, 16\) and patches \(80, 2\)"):
        load_m2d_checkpoint(path)
    path = save_pretraining_checkpoint(tmp_path / "m2d_vit_base-80x16p80x2p32k-240301", model)
    with pytest.raises(ModelLoadError, match=r"is a 32 kHz M2D model \(folder name\); this toolkit runs the 16 kHz"):
        load_m2d_checkpoint(path)


# ---------------------------------------------------------------------------------------------------------------
# Adapter: front end, chunking, padding


def test_front_end_is_the_runtime_log_mel_normalised_with_two_scalars():
    encoder = M2DEncoder(random_model(SPEECH), name="tiny", norm_stats=(-6.0, 2.5))
    clip = waveform(0.4, seed=1)
    ours = encoder.log_mel(clip)
    assert ours.shape == (80, 1 + len(clip) // 160)  # mel bins first; centred frames
    reference = features.log_mel_spectrogram(clip, n_mels=80, n_fft=400, hop_length=160, f_min=50.0, f_max=8000.0,
                                             mel_scale="slaney", norm="slaney",
                                             log_offset=float(np.finfo(np.float32).eps))
    np.testing.assert_allclose(ours, (reference.T + 6.0) / 2.5, rtol=1e-5, atol=1e-5)


def test_front_end_puts_a_1_khz_tone_in_the_slaney_band_around_1_khz():
    encoder = M2DEncoder(random_model(SPEECH), name="tiny")
    tone = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(8000) / 16_000).astype(np.float32)
    peak = int(np.median(encoder.log_mel(tone).argmax(axis=0)))
    # Slaney mels are linear below 1 kHz (200/3 Hz per mel): centres of 80 bands from 50 Hz to 8 kHz.
    low, high = 50 / (200 / 3), 15 + math.log(8000 / 1000) / (math.log(6.4) / 27)
    centres_mel = np.linspace(low, high, 82)[1:-1]
    assert abs(centres_mel[peak] * 200 / 3 - 1000) < 80


@pytest.mark.parametrize("config", [SPEECH, GENERAL])
def test_long_clips_are_chunks_encoded_alone_and_concatenated(config):
    encoder = M2DEncoder(random_model(config, seed=13), name="tiny")
    clip = waveform(0.77, seed=2)  # 78 frames: several chunks and a short last one
    output = encoder.encode([clip])
    spectrogram = torch.from_numpy(encoder.log_mel(clip))
    patch, chunk = config.patch_size[1], config.chunk_frames
    padded = math.ceil(spectrogram.shape[1] / patch) * patch
    spectrogram = torch.nn.functional.pad(spectrogram, (0, padded - spectrogram.shape[1]))
    with torch.no_grad():
        pieces = [encoder.model(spectrogram[None, :, start: start + chunk]) for start in range(0, padded, chunk)]
    assert int(output.frame_mask.sum()) == padded // patch
    for layer, actual in enumerate(output.hidden_states):
        expected = torch.cat([piece[layer][0] for piece in pieces])
        assert actual.shape == (1, padded // patch, config.frame_dim)
        torch.testing.assert_close(actual[0], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("config", [SPEECH, GENERAL])
def test_padded_clips_give_the_same_frames_as_clips_alone(config):
    encoder = M2DEncoder(random_model(config, seed=14), name="tiny")
    assert encoder.supports_padding
    clips = [waveform(0.5, seed=1), waveform(0.013, seed=2), waveform(0.21, seed=3)]
    batch = encoder.encode(clips)
    for row, clip in enumerate(clips):
        alone = encoder.encode([clip])
        frames = int(alone.frame_mask.sum())
        assert frames == math.ceil((1 + len(clip) // 160) / config.patch_size[1])
        assert int(batch.frame_mask[row].sum()) == frames
        for batched, single in zip(batch.hidden_states, alone.hidden_states):
            torch.testing.assert_close(batched[row, :frames], single[0], rtol=1e-5, atol=1e-5)
            assert torch.all(batched[row, frames:] == 0)


def test_description_and_shapes(tmp_path):
    source = random_model(GENERAL, seed=15)
    path = save_pretraining_checkpoint(tmp_path / "m2d_vit_base-80x32p16x16-221006", source)
    encoder = M2DEncoder.from_checkpoint(path, num_heads=2, dtype=torch.float64)
    output = encoder.encode([waveform(0.6, seed=1), waveform(0.3, seed=2)])
    assert len(output.hidden_states) == GENERAL.depth + 1 == encoder.description.num_layers
    assert all(layer.shape == (2, 4, 5 * 16) and layer.dtype == torch.float64 for layer in output.hidden_states)
    description = encoder.description
    assert (description.kind, description.name, description.revision) == ("m2d", str(path), None)
    assert description.weights_sha256 == weights_sha256(encoder.model)
    assert description.num_parameters == count_parameters(source)
    assert description.settings["norm_stats"] == list(DEFAULT_NORM_STATS)
    assert description.settings["architecture"]["patch_size"] == [16, 16]
    assert description.settings["dtype"] == "float64"


def test_bad_encoder_inputs_are_explained():
    with pytest.raises(ValueError, match=r"norm_stats must be \(mean, std\) with a positive std, got \(-7\.0, 0\.0\)"):
        M2DEncoder(random_model(SPEECH), name="tiny", norm_stats=(-7.0, 0.0))
    encoder = M2DEncoder(random_model(SPEECH), name="tiny")
    with pytest.raises(ValueError, match=r"waveform 1 has shape \(200,\); M2D needs a mono clip of more than 200"):
        encoder.encode([waveform(0.1, seed=1), np.zeros(200, np.float32)])
    with pytest.raises(ValueError, match=r"encode needs at least one waveform"):
        encoder.encode([])
    with pytest.raises(ValueError, match=r"chunk of 80 mel bins x 18 frames: this model takes 80 mel bins and a "
                                         r"multiple of 2 frames up to 16"):
        encoder.model(torch.zeros(1, 80, 18))
