"""TransformersEncoder on tiny random models saved locally."""

import numpy as np
import pytest
import transformers
from tiny_models import save_tiny_model

from speat_metric.adapters import ModelLoadError, load_encoder
from speat_metric.adapters.transformers_encoder import TransformersEncoder

CLIPS = [np.random.default_rng(seed).normal(0, 0.1, length).astype(np.float32)
         for seed, length in ((1, 16_000), (2, 9_000), (3, 12_345))]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {kind: save_tiny_model(kind, root / kind)
            for kind in ("wav2vec2", "hubert", "wavlm", "data2vec-audio", "whisper")}


@pytest.mark.parametrize("kind", ["wav2vec2", "wavlm", "whisper"])
def test_padding_inside_a_batch_changes_nothing(models, kind):
    encoder = TransformersEncoder(models[kind])
    assert encoder.supports_padding
    batch = encoder.encode(CLIPS)
    for row, clip in enumerate(CLIPS):
        alone = encoder.encode([clip])
        valid = int(alone.frame_mask[0].sum())
        assert int(batch.frame_mask[row].sum()) == valid
        for in_batch, by_itself in zip(batch.hidden_states, alone.hidden_states):
            np.testing.assert_allclose(in_batch[row, :valid], by_itself[0, :valid], atol=1e-5)


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert", "wavlm", "data2vec-audio", "whisper"])
def test_layers_and_shapes(models, kind):
    encoder = TransformersEncoder(models[kind])
    output = encoder.encode([CLIPS[0]])
    assert len(output.hidden_states) == encoder.description.num_layers == 3  # embedding layer + 2 transformer layers
    assert all(layer.shape == (1, output.frame_mask.shape[1], 32) for layer in output.hidden_states)
    # 16,000 samples: through the tiny CNN (kernel 10 stride 5, kernel 8 stride 4), or Whisper's 20 ms frames
    expected_frames = 50 if kind == "whisper" else ((16_000 - 10) // 5 + 1 - 8) // 4 + 1
    assert int(output.frame_mask.sum()) == expected_frames
    description = encoder.description
    assert description.kind == "transformers" and description.settings["model_type"] == kind
    assert description.revision is None and len(description.weights_sha256) == 64
    assert description.num_parameters == sum(p.numel() for p in encoder.model.parameters())


def test_group_norm_models_refuse_padding(models):
    encoder = TransformersEncoder(models["hubert"])
    assert not encoder.supports_padding
    with pytest.raises(ValueError, match=r"normalises over padding \(group norm\)"):
        encoder.encode(CLIPS[:2])


def test_padding_leaks_are_detected(models):
    """data2vec-audio takes an attention mask, but its normalised positional convolutions leak padding."""
    assert not TransformersEncoder(models["data2vec-audio"]).supports_padding


def test_whisper_long_clips_are_encoded_in_30_second_windows(models):
    encoder = TransformersEncoder(models["whisper"])
    long_clip = np.random.default_rng(0).normal(0, 0.1, 16_000 * 35).astype(np.float32)
    output = encoder.encode([long_clip, CLIPS[1]])
    assert output.frame_mask.sum(dim=1).tolist() == [1500 + 250, 29]
    first_window = encoder.encode([long_clip[: 16_000 * 30]])
    np.testing.assert_allclose(output.hidden_states[-1][0, :1500], first_window.hidden_states[-1][0, :1500], atol=1e-5)


def test_weight_hash_follows_the_weights(models, tmp_path):
    same = TransformersEncoder(models["wav2vec2"]).description.weights_sha256
    other = TransformersEncoder(save_tiny_model("wav2vec2", tmp_path / "other", seed=1)).description.weights_sha256
    assert same == TransformersEncoder(models["wav2vec2"]).description.weights_sha256 != other


def test_not_a_speech_encoder(tmp_path):
    transformers.BertModel(transformers.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                                   intermediate_size=8)).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match=r"is a 'bert' model, not a speech encoder"):
        load_encoder(str(tmp_path))


def test_missing_model(tmp_path):
    """A Hub id that does not exist is tested end to end against the local Hub server in test_cli_evaluate."""
    with pytest.raises(ModelLoadError, match=r"^model directory '.*/not-here' does not exist$"):
        load_encoder(str(tmp_path / "not-here"))


def test_bad_dtype(models):
    with pytest.raises(ValueError, match=r"dtype must be one of float32, float16, bfloat16, got 'float8'"):
        load_encoder(str(models["wav2vec2"]), dtype="float8")
