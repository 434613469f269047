"""Tests of speat_metric.adapters.melhubert: architecture against torch's own modules, the released checkpoint format,
front end, padding invariance and error messages."""

from __future__ import annotations

import argparse
import fractions
import math

import numpy as np
import pytest
import torch
from tiny_models import randomise_layer_norms, tone_in_noise
from torch import nn

from speat_metric import features
from speat_metric.adapters.base import ModelLoadError, count_parameters, weights_sha256
from speat_metric.adapters.melhubert import (
    MelHuBERTConfig,
    MelHuBERTEncoder,
    MelHuBERTModel,
    load_mean_std,
    load_melhubert_checkpoint,
    melhubert_features,
    save_melhubert_checkpoint,
)

TINY = dict(encoder_layers=2, encoder_embed_dim=24, encoder_ffn_embed_dim=40, encoder_attention_heads=3,
            conv_pos=6, conv_pos_groups=3)


def tiny_config(**changes) -> MelHuBERTConfig:
    return MelHuBERTConfig(**{**TINY, **changes})


def random_model(config: MelHuBERTConfig, seed: int = 0) -> MelHuBERTModel:
    torch.manual_seed(seed)
    return randomise_layer_norms(MelHuBERTModel(config).eval())


def waveform(seconds: float, seed: int) -> np.ndarray:
    return tone_in_noise(seconds, 150 + 50 * seed, seed)


def released_upstream_config(config: MelHuBERTConfig) -> dict:
    """What the authors' config_model_*.yaml holds, training-only keys included, written out independently."""
    return {
        "feat_emb_dim": config.num_mel_bins * config.frame_period_ms // 10, "pos_emb_type": "conv",
        "pos_conv_depth": 1, "conv_pos": config.conv_pos, "conv_pos_groups": config.conv_pos_groups,
        "encoder_layers": config.encoder_layers, "encoder_embed_dim": config.encoder_embed_dim,
        "encoder_ffn_embed_dim": config.encoder_ffn_embed_dim,
        "encoder_attention_heads": config.encoder_attention_heads, "activation_fn": config.activation_fn,
        "layer_norm_first": config.layer_norm_first, "attention_type": config.attention_type,
        "num_cluster": config.num_cluster, "pred_masked_weight": 1.0, "pred_nomask_weight": 0.0,
        "skip_masked": False, "skip_nomask": True, "mask_prob": 0.7, "mask_length": 5, "mask_selection": "static",
        "mask_other": 0.0, "no_mask_overlap": False, "mask_min_space": 1, "learnable_mask_emb": False,
        "mask_before_proj": True, "dropout": 0.1, "attention_dropout": 0.1, "activation_dropout": 0.1,
        "encoder_layerdrop": 0.0,
    }


def save_released(path, model: MelHuBERTModel, *, section: str = "melhubert", **extra) -> None:
    """A checkpoint laid out like MelHuBERTPretrainer.save_model, optimizer state and argparse.Namespace included."""
    states = {
        "Optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]},
        "Step": 421_000,
        "Args": argparse.Namespace(mode="melhubert", expdir="exp/melhubert", device="cuda"),
        "Runner": {"runner": {"total_steps": 421_000}},
        "model": model.state_dict(),
        "Upstream_Config": {section: released_upstream_config(model.config)},
        **extra,
    }
    torch.save(states, path)


def expected_released_keys(layers: int, *, with_projection: bool = True) -> set[str]:
    """State-dict keys of the authors' MelHuBERTModel (model.py, module.py, fairseq MultiheadAttention)."""
    keys = {"encoder.pos_conv.0.weight_g", "encoder.pos_conv.0.weight_v", "encoder.pos_conv.0.bias",
            "encoder.layer_norm.weight", "encoder.layer_norm.bias", "final_proj.weight", "final_proj.bias"}
    if with_projection:
        keys |= {"pre_extract_proj.weight", "pre_extract_proj.bias"}
    for layer in range(layers):
        for part in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
                     "self_attn_layer_norm", "fc1", "fc2", "final_layer_norm"):
            keys |= {f"encoder.layers.{layer}.{part}.weight", f"encoder.layers.{layer}.{part}.bias"}
    return keys


# ---------------------------------------------------------------------------------------------------------------
# Configurations and parameter counts


@pytest.mark.parametrize("name, layers, width, ffn, heads", [
    ("small", 3, 640, 2048, 8), ("slim", 12, 384, 768, 8), ("base", 12, 768, 3072, 12)])
def test_size_constructors_follow_lin_2024_table_2(name, layers, width, ffn, heads):
    config = getattr(MelHuBERTConfig, name)()
    assert (config.encoder_layers, config.encoder_embed_dim, config.encoder_ffn_embed_dim,
            config.encoder_attention_heads) == (layers, width, ffn, heads)
    assert config.feat_emb_dim == 80 and config.layer_norm_first is False


@pytest.mark.parametrize("name, paper_millions", [("small", 16.5), ("slim", 15.6), ("base", 90.2)])
def test_parameter_counts_match_the_paper(name, paper_millions):
    # The meta device builds the 90M-parameter model without allocating or initialising memory.
    with torch.device("meta"):
        model = MelHuBERTModel(getattr(MelHuBERTConfig, name)())
    millions = count_parameters(model) / 1e6
    assert round(millions, 1) == paper_millions  # Table 2 reports one decimal
    assert abs(millions - paper_millions) / paper_millions < 0.01


def test_config_rejects_impossible_architectures_with_the_fix():
    with pytest.raises(ValueError, match=r"encoder_embed_dim \(30\) must be divisible by encoder_attention_heads "
                                         r"\(4\)"):
        MelHuBERTConfig(encoder_embed_dim=30, encoder_attention_heads=4, conv_pos_groups=3)
    with pytest.raises(ValueError, match=r"frame_period_ms must be 10 or 20 .*got 30"):
        MelHuBERTConfig(frame_period_ms=30)
    with pytest.raises(ValueError, match=r"activation_fn must be one of \['gelu', 'relu'\], got 'swish'"):
        MelHuBERTConfig(activation_fn="swish")
    with pytest.raises(ValueError, match=r"attention_type must be 'original' or 'causal', got 'local'"):
        MelHuBERTConfig(attention_type="local")


def test_upstream_config_round_trip_and_frame_period_from_feat_emb_dim():
    for frame_period in (10, 20):
        config = tiny_config(frame_period_ms=frame_period, layer_norm_first=True, attention_type="causal")
        read = MelHuBERTConfig.from_upstream_config(released_upstream_config(config))
        assert read == config
        assert read.feat_emb_dim == 40 * frame_period // 10
    with pytest.raises(ValueError, match=r"feat_emb_dim 60 is neither 40 .* nor 80"):
        MelHuBERTConfig.from_upstream_config({"feat_emb_dim": 60})
    with pytest.raises(ValueError, match=r"pos_conv_depth 3 is not supported"):
        MelHuBERTConfig.from_upstream_config({"pos_conv_depth": 3})


# ---------------------------------------------------------------------------------------------------------------
# Architecture against independent implementations


def test_state_dict_has_exactly_the_released_key_names():
    assert set(MelHuBERTModel(tiny_config()).state_dict()) == expected_released_keys(2)
    # The authors omit the input projection when the width equals the input width.
    same_width = tiny_config(encoder_embed_dim=80, encoder_attention_heads=4, conv_pos_groups=4)
    assert set(MelHuBERTModel(same_width).state_dict()) == expected_released_keys(2, with_projection=False)


@pytest.mark.parametrize("layer_norm_first", [False, True])
@pytest.mark.parametrize("attention_type", ["original", "causal"])
def test_encoder_layer_equals_torch_transformer_layer(layer_norm_first, attention_type):
    config = tiny_config(layer_norm_first=layer_norm_first, attention_type=attention_type)
    layer = random_model(config).double().encoder.layers[0]
    width, heads = config.encoder_embed_dim, config.encoder_attention_heads
    reference = nn.TransformerEncoderLayer(width, heads, dim_feedforward=config.encoder_ffn_embed_dim, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=layer_norm_first).double()
    with torch.no_grad():
        attention = layer.self_attn
        reference.self_attn.in_proj_weight.copy_(torch.cat([attention.q_proj.weight, attention.k_proj.weight,
                                                            attention.v_proj.weight]))
        reference.self_attn.in_proj_bias.copy_(torch.cat([attention.q_proj.bias, attention.k_proj.bias,
                                                          attention.v_proj.bias]))
        reference.self_attn.out_proj.load_state_dict(attention.out_proj.state_dict())
        reference.linear1.load_state_dict(layer.fc1.state_dict())
        reference.linear2.load_state_dict(layer.fc2.state_dict())
        reference.norm1.load_state_dict(layer.self_attn_layer_norm.state_dict())
        reference.norm2.load_state_dict(layer.final_layer_norm.state_dict())
    reference.eval()
    torch.manual_seed(1)
    x = torch.randn(2, 9, width, dtype=torch.float64)
    valid = torch.tensor([[True] * 9, [True] * 5 + [False] * 4])
    causal = attention_type == "causal"
    future = torch.triu(torch.ones(9, 9, dtype=torch.bool), diagonal=1) if causal else None
    expected = reference(x, src_mask=future, src_key_padding_mask=~valid)
    allowed = valid[:, None, :] & (~future[None] if causal else torch.ones(1, 9, 9, dtype=torch.bool))
    with torch.no_grad():
        actual = layer(x, allowed)
    torch.testing.assert_close(actual[valid], expected[valid], rtol=1e-10, atol=1e-10)


def test_positional_convolution_equals_torch_weight_norm():
    config = tiny_config()
    model = random_model(config).double()
    conv = model.encoder.pos_conv[0]
    reference = nn.Conv1d(24, 24, kernel_size=6, padding=3, groups=3).double()
    reference = nn.utils.parametrizations.weight_norm(reference, name="weight", dim=2)
    with torch.no_grad():
        conv.weight_g.mul_(torch.linspace(0.5, 2.0, 6, dtype=torch.float64))  # g no longer equal to |v|
        reference.parametrizations.weight.original0.copy_(conv.weight_g)
        reference.parametrizations.weight.original1.copy_(conv.weight_v)
        reference.bias.copy_(conv.bias)
        x = torch.randn(2, 24, 11, dtype=torch.float64)
        torch.testing.assert_close(conv(x), reference(x), rtol=1e-12, atol=1e-12)


def test_forward_composes_projection_position_convolution_and_layers():
    """Recompute hidden states step by step from the authors' description with torch.nn.functional."""
    config = tiny_config()
    model = random_model(config).double()
    torch.manual_seed(2)
    frames = torch.randn(1, 13, 80, dtype=torch.float64)
    valid = torch.ones(1, 13, dtype=torch.bool)
    with torch.no_grad():
        hidden = model(frames, valid)
        projected = frames @ model.pre_extract_proj.weight.T + model.pre_extract_proj.bias
        conv = model.encoder.pos_conv[0]
        weight = conv.weight_v * conv.weight_g / conv.weight_v.pow(2).sum(dim=(0, 1), keepdim=True).sqrt()
        position = torch.nn.functional.conv1d(projected.transpose(1, 2), weight, conv.bias, padding=3, groups=3)
        x = projected + torch.nn.functional.gelu(position[..., :13]).transpose(1, 2)
        x = model.encoder.layer_norm(x)
        expected = [projected]
        for layer in model.encoder.layers:
            x = layer(x, valid[:, None, :])
            expected.append(x)
    assert len(hidden) == config.encoder_layers + 1
    for actual, wanted in zip(hidden, expected):
        torch.testing.assert_close(actual, wanted, rtol=1e-12, atol=1e-12)


def test_random_initialisation_follows_the_authors_and_is_reproducible():
    config = tiny_config(encoder_embed_dim=96, encoder_ffn_embed_dim=384, encoder_attention_heads=4)
    state = torch.random.get_rng_state()
    first = MelHuBERTEncoder.from_config(config, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global generator is left alone
    assert first.description.weights_sha256 == MelHuBERTEncoder.from_config(config, seed=3).description.weights_sha256
    assert first.description.weights_sha256 != MelHuBERTEncoder.from_config(config, seed=4).description.weights_sha256
    model = first.model
    fc1 = model.encoder.layers[0].fc1.weight
    assert abs(fc1.std().item() - 0.02) < 0.002 and torch.all(model.encoder.layers[0].fc1.bias == 0)  # init_bert_params
    conv = model.encoder.pos_conv[0]
    torch.testing.assert_close(conv.weight(), conv.weight_v)  # weight norm starts at g = |v|
    assert abs(conv.weight_v.std().item() - math.sqrt(4 / (6 * 96))) < 0.01


# ---------------------------------------------------------------------------------------------------------------
# Released checkpoint format


def test_released_checkpoint_loads_with_identical_outputs(tmp_path):
    config = tiny_config()
    source = random_model(config, seed=5)
    path = tmp_path / "checkpoint-epoch-200.ckpt"
    save_released(path, source)
    loaded = load_melhubert_checkpoint(path)
    assert loaded.config == config and not loaded.training
    torch.manual_seed(6)
    frames, valid = torch.randn(2, 17, 80), torch.tensor([[True] * 17, [True] * 11 + [False] * 6])
    with torch.no_grad():
        for expected, actual in zip(source(frames, valid), loaded(frames, valid)):
            assert torch.equal(expected, actual)


def test_compression_repository_section_newer_weight_norm_keys_and_mask_embedding(tmp_path):
    source = random_model(tiny_config(frame_period_ms=10), seed=7)
    state = {key.replace("pos_conv.0.weight_g", "pos_conv.0.parametrizations.weight.original0")
                .replace("pos_conv.0.weight_v", "pos_conv.0.parametrizations.weight.original1"): tensor
             for key, tensor in source.state_dict().items()}
    path = tmp_path / "melhubert-10ms-stage1-libri360-200epochs.ckpt"
    state["mask_emb"] = torch.rand(40)  # learnable_mask_emb: a pre-training-only parameter
    torch.save({"model": state, "Upstream_Config": {"hubert": released_upstream_config(source.config)}}, path)
    loaded = load_melhubert_checkpoint(path)
    assert loaded.config.frame_period_ms == 10
    assert weights_sha256(loaded) == weights_sha256(source)


def test_save_writes_the_released_format_atomically(tmp_path):
    model = random_model(tiny_config(), seed=8)
    path = tmp_path / "out" / "model.ckpt"
    save_melhubert_checkpoint(model, path, step=12)
    assert [p.name for p in path.parent.iterdir()] == ["model.ckpt"]
    states = torch.load(path, weights_only=True)
    assert states["Step"] == 12 and set(states["model"]) == expected_released_keys(2)
    assert states["Upstream_Config"]["melhubert"]["feat_emb_dim"] == 80
    assert weights_sha256(load_melhubert_checkpoint(path)) == weights_sha256(model)


def test_missing_and_unreadable_files_are_named(tmp_path):
    with pytest.raises(ModelLoadError, match=r"MelHuBERT checkpoint '.*absent\.ckpt' does not exist"):
        load_melhubert_checkpoint(tmp_path / "absent.ckpt")
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"this is not a torch file")
    with pytest.raises(ModelLoadError, match=r"'.*garbage\.ckpt' is not a readable PyTorch file"):
        load_melhubert_checkpoint(garbage)


def test_non_melhubert_files_name_what_is_missing(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}, "epoch": 3}, path)
    with pytest.raises(ModelLoadError, match=r"'.*other\.pt' is not a MelHuBERT checkpoint: expected a dict with "
                                             r"'model' and 'Upstream_Config'.*found epoch, state_dict"):
        load_melhubert_checkpoint(path)
    model = random_model(tiny_config())
    state = model.state_dict()
    state["encoder.layers.0.extra.weight"] = state.pop("encoder.layers.0.fc1.weight")
    torch.save({"model": state, "Upstream_Config": {"melhubert": released_upstream_config(model.config)}}, path)
    with pytest.raises(ModelLoadError, match=r"missing keys: encoder\.layers\.0\.fc1\.weight; unexpected keys: "
                                             r"encoder\.layers\.0\.extra\.weight"):
        load_melhubert_checkpoint(path)
    torch.save({"model": model.state_dict(), "Upstream_Config": {"other": {}}}, path)
    with pytest.raises(ModelLoadError, match=r"'Upstream_Config' has no 'melhubert' \(or 'hubert'\) section"):
        load_melhubert_checkpoint(path)


def test_configuration_that_contradicts_the_weights_is_reported(tmp_path):
    model = random_model(tiny_config())
    wrong = released_upstream_config(model.config) | {"encoder_ffn_embed_dim": 48}
    path = tmp_path / "mismatch.ckpt"
    torch.save({"model": model.state_dict(), "Upstream_Config": {"melhubert": wrong}}, path)
    with pytest.raises(ModelLoadError, match=r"tensor 'encoder\.layers\.0\.fc1\.weight' has shape \(40, 24\) but the "
                                             r"configuration implies \(48, 24\)"):
        load_melhubert_checkpoint(path)
    torch.save({"model": model.state_dict(), "Upstream_Config": {"melhubert": {"pos_emb_type": "sin"}}}, path)
    with pytest.raises(ModelLoadError, match=r"unsupported MelHuBERT configuration: pos_emb_type 'sin'"):
        load_melhubert_checkpoint(path)


def test_unsafe_pickles_need_explicit_trust(tmp_path):
    path = tmp_path / "unsafe.ckpt"
    save_released(path, random_model(tiny_config()), Extra=fractions.Fraction(1, 3))
    with pytest.raises(ModelLoadError, match=r"pickles Python objects that are unsafe to load \(fractions\.Fraction\)"
                                             r"\. If you trust where the file comes from, pass trust_checkpoint=True"):
        load_melhubert_checkpoint(path)
    assert load_melhubert_checkpoint(path, trust_checkpoint=True).config == tiny_config()


# ---------------------------------------------------------------------------------------------------------------
# Front end and normalisation statistics


def test_front_end_scales_to_16_bit_range_and_uses_40_hamming_bins():
    clip = waveform(0.5, seed=1)
    config = tiny_config(frame_period_ms=10)
    ours = melhubert_features(clip, config)
    unscaled = features.kaldi_fbank(clip, num_mel_bins=40, window_type="hamming")
    assert ours.shape == (1 + (len(clip) - 400) // 160, 40)
    # Scaling the waveform by 2**15 multiplies energies by 2**30: log features shift by 30 ln 2.
    np.testing.assert_allclose(ours - unscaled, np.full_like(ours, 30 * math.log(2)), atol=1e-3)


@pytest.mark.parametrize("samples", [400 + 160 * 6, 400 + 160 * 7])  # 7 and 8 filter-bank frames
def test_20ms_frames_stack_pairs_after_normalisation(samples):
    clip = waveform(1.0, seed=2)[:samples]
    rng = np.random.default_rng(3)
    mean, std = rng.normal(size=40).astype(np.float32), rng.uniform(0.5, 2.0, size=40).astype(np.float32)
    ten = melhubert_features(clip, tiny_config(frame_period_ms=10), mean=mean, std=std)
    twenty = melhubert_features(clip, tiny_config(frame_period_ms=20), mean=mean, std=std)
    assert len(twenty) == math.ceil(len(ten) / 2)
    for step in range(len(twenty)):
        odd = ten[2 * step + 1] if 2 * step + 1 < len(ten) else np.zeros(40)  # the authors zero-fill the last pair
        np.testing.assert_array_equal(twenty[step], np.concatenate([ten[2 * step], odd]))
    plain = melhubert_features(clip, tiny_config(frame_period_ms=10))
    np.testing.assert_allclose(ten, (plain - mean) / std, rtol=1e-5, atol=1e-5)


def test_mean_std_file_round_trip_and_errors(tmp_path):
    stats = np.stack([np.linspace(-3, 3, 40), np.linspace(1, 2, 40)])
    path = tmp_path / "libri-960-mean-std.npy"
    np.save(path, stats)
    mean, std = load_mean_std(path)
    np.testing.assert_allclose(mean, stats[0], rtol=1e-6)
    np.testing.assert_allclose(std, stats[1], rtol=1e-6)
    np.save(path, stats[:, :30])
    with pytest.raises(ModelLoadError, match=r"has shape \(2, 30\); expected \(2, 40\): row 0 the mean, row 1"):
        load_mean_std(path)
    np.save(path, np.stack([stats[0], -stats[1]]))
    with pytest.raises(ModelLoadError, match=r"standard deviation that is not positive"):
        load_mean_std(path)
    with pytest.raises(ModelLoadError, match=r"cannot read MelHuBERT mean/std file '.*missing\.npy'"):
        load_mean_std(tmp_path / "missing.npy")


# ---------------------------------------------------------------------------------------------------------------
# Adapter


def test_encode_shapes_layer_count_and_description(tmp_path):
    model = random_model(tiny_config(), seed=9)
    np.save(tmp_path / "stats.npy", np.stack([np.zeros(40), np.full(40, 2.0)]))
    path = tmp_path / "model.ckpt"
    save_released(path, model)
    encoder = MelHuBERTEncoder.from_checkpoint(path, mean_std_path=tmp_path / "stats.npy")
    clips = [waveform(1.0, seed=1), waveform(0.43, seed=2)]
    output = encoder.encode(clips)
    filter_bank_frames = [1 + (len(clip) - 400) // 160 for clip in clips]
    counts = [math.ceil(frames / 2) for frames in filter_bank_frames]
    assert len(output.hidden_states) == 3 == encoder.description.num_layers
    assert all(tuple(layer.shape) == (2, max(counts), 24) for layer in output.hidden_states)
    assert output.frame_mask.sum(dim=1).tolist() == counts
    description = encoder.description
    assert (description.kind, description.name, description.revision) == ("melhubert", str(path), None)
    assert description.weights_sha256 == weights_sha256(model)
    assert description.num_parameters == count_parameters(model)
    assert description.settings["architecture"]["encoder_layers"] == 2
    assert description.settings["front_end"]["frames_stacked"] == 2
    assert description.settings["dtype"] == "float32"
    assert len(description.settings["normalisation_sha256"]) == 64
    assert MelHuBERTEncoder(model, name="x").description.settings["normalisation_sha256"] is None


@pytest.mark.parametrize("config", [tiny_config(), tiny_config(layer_norm_first=True, frame_period_ms=10)])
def test_padded_clips_give_the_same_frames_as_clips_alone(config):
    encoder = MelHuBERTEncoder(random_model(config, seed=10), name="tiny")
    assert encoder.supports_padding
    clips = [waveform(0.9, seed=1), waveform(0.31, seed=2), waveform(0.62, seed=3)]
    batch = encoder.encode(clips)
    for row, clip in enumerate(clips):
        alone = encoder.encode([clip])
        frames = int(alone.frame_mask.sum())
        assert int(batch.frame_mask[row].sum()) == frames
        for batched, single in zip(batch.hidden_states, alone.hidden_states):
            torch.testing.assert_close(batched[row, :frames], single[0], rtol=1e-5, atol=1e-5)


def test_float64_encoding_matches_float32():
    model = random_model(tiny_config(), seed=11)
    clip = [waveform(0.5, seed=4)]
    single = MelHuBERTEncoder(model, name="tiny").encode(clip)
    double = MelHuBERTEncoder(random_model(tiny_config(), seed=11), name="tiny", dtype=torch.float64).encode(clip)
    assert double.hidden_states[-1].dtype == torch.float64
    torch.testing.assert_close(double.hidden_states[-1].float(), single.hidden_states[-1], rtol=1e-4, atol=1e-4)


def test_bad_encoder_inputs_are_explained():
    encoder = MelHuBERTEncoder(random_model(tiny_config()), name="tiny")
    with pytest.raises(ValueError, match=r"waveform 1 has shape \(399,\); MelHuBERT needs a mono clip of at least 400"):
        encoder.encode([waveform(0.1, seed=1), np.zeros(399, np.float32)])
    with pytest.raises(ValueError, match=r"encode needs at least one waveform"):
        encoder.encode([])
    with pytest.raises(ValueError, match=r"give both mean and std"):
        MelHuBERTEncoder(random_model(tiny_config()), name="tiny", mean=np.zeros(40))
    with pytest.raises(ValueError, match=r"mean and std must each have 40 values .*got shapes \(80,\) and \(80,\)"):
        MelHuBERTEncoder(random_model(tiny_config()), name="tiny", mean=np.zeros(80), std=np.ones(80))
    with pytest.raises(ValueError, match=r"features have 40 dims per frame; this model takes 80"):
        random_model(tiny_config())(torch.zeros(1, 3, 40), torch.ones(1, 3, dtype=torch.bool))
