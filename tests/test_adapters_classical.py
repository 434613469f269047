"""speat_metric.adapters.classical: the classical-feature encoder's shapes, mask, padding invariance and description."""

import doctest
import inspect
import json
import logging

import numpy as np
import pytest
import torch

from speat_metric import features
from speat_metric.adapters import classical
from speat_metric.adapters.base import EncoderOutput, ModelDescription, SpeechEncoder
from speat_metric.adapters.classical import CLASSICAL_FEATURES, ClassicalFeatureEncoder

LENGTHS = (16_000, 7_777, 12_345)  # samples; the longest first so that padding happens after it

# name -> (feature dimension, frames of a clip of n samples), from S3PRL's configurations.
EXPECTED = {
    "stft": (257, lambda n: 1 + n // 320),
    "spectrogram": (257, lambda n: 1 + (n - 400) // 160),
    "mel_spectrogram": (80, lambda n: 1 + n // 160),
    "mfcc": (39, lambda n: 1 + (n - 400) // 160),
}
FUNCTIONS = {"stft": features.stft_magnitude, "spectrogram": features.log_power_spectrogram,
             "mel_spectrogram": features.log_mel_spectrogram, "mfcc": features.mfcc}


def clips(lengths=LENGTHS, seed=0):
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(n) + 0.05 * np.sin(np.arange(n) / 7.0)).astype(np.float32) for n in lengths]


def test_feature_names():
    assert CLASSICAL_FEATURES == ("stft", "spectrogram", "mel_spectrogram", "mfcc")
    assert set(EXPECTED) == set(CLASSICAL_FEATURES)


@pytest.mark.parametrize("name", CLASSICAL_FEATURES)
def test_shapes_layers_and_mask(name):
    dim, frames = EXPECTED[name]
    output = ClassicalFeatureEncoder(name).encode(clips())
    assert isinstance(output, EncoderOutput) and len(output.hidden_states) == 1
    counts = [frames(n) for n in LENGTHS]
    hidden = output.hidden_states[0]
    assert hidden.dtype == torch.float32 and tuple(hidden.shape) == (len(LENGTHS), max(counts), dim)
    assert output.frame_mask.dtype == torch.bool
    assert output.frame_mask.sum(dim=1).tolist() == counts
    for row, count in enumerate(counts):
        assert output.frame_mask[row, :count].all() and not output.frame_mask[row, count:].any()
        assert torch.all(hidden[row, count:] == 0)  # padding frames are zeros, and masked out


@pytest.mark.parametrize("name", CLASSICAL_FEATURES)
def test_a_clip_inside_a_batch_gives_the_same_valid_frames_as_alone(name):
    encoder = ClassicalFeatureEncoder(name)
    batch = clips()
    together = encoder.encode(batch)
    for row, clip in enumerate(batch):
        alone = encoder.encode([clip])
        count = int(alone.frame_mask.sum())
        assert int(together.frame_mask[row].sum()) == count
        torch.testing.assert_close(together.hidden_states[0][row, :count], alone.hidden_states[0][0], rtol=0, atol=0)


def test_the_features_are_the_feature_functions_with_s3prl_deltas():
    clip = clips()[1]
    encoded = {name: ClassicalFeatureEncoder(name).encode([clip]).hidden_states[0][0].numpy()
               for name in CLASSICAL_FEATURES}
    for name in ("stft", "spectrogram", "mel_spectrogram"):
        np.testing.assert_array_equal(encoded[name], FUNCTIONS[name](clip))
    cepstra = features.mfcc(clip)
    np.testing.assert_array_equal(encoded["mfcc"][:, :13], cepstra)
    np.testing.assert_allclose(encoded["mfcc"][:, 13:26], features.deltas(cepstra), rtol=1e-6)
    np.testing.assert_allclose(encoded["mfcc"][:, 26:], features.deltas(features.deltas(cepstra)), rtol=1e-6)


@pytest.mark.parametrize("name", CLASSICAL_FEATURES)
def test_description(name):
    description = ClassicalFeatureEncoder(name).description
    assert isinstance(description, ModelDescription)
    assert (description.name, description.kind, description.revision, description.weights_sha256) == (
        name, "feature", None, None)
    assert description.num_parameters == 0 and description.num_layers == 1
    assert json.loads(json.dumps(description.to_dict())) == description.to_dict()
    assert ModelDescription.from_dict(description.to_dict()) == description
    assert description.settings["cmvn"] is False
    assert description.settings["delta_order"] == (2 if name == "mfcc" else 0)


def test_settings_hold_the_s3prl_parameters():
    stft = ClassicalFeatureEncoder("stft").description.settings
    assert (stft["n_fft"], stft["hop_length"], stft["window"], stft["center"], stft["log"]) == (
        512, 320, "hann", True, False)
    mel = ClassicalFeatureEncoder("mel_spectrogram").description.settings
    assert (mel["n_mels"], mel["n_fft"], mel["hop_length"], mel["mel_scale"], mel["log_offset"]) == (
        80, 400, 160, "htk", 1e-10)
    mfcc = ClassicalFeatureEncoder("mfcc").description.settings
    assert (mfcc["num_ceps"], mfcc["num_mel_bins"], mfcc["cepstral_lifter"], mfcc["delta_win_length"]) == (
        13, 23, 22.0, 5)
    spectrogram = ClassicalFeatureEncoder("spectrogram").description.settings
    assert (spectrogram["frame_length"], spectrogram["frame_shift"], spectrogram["window_type"]) == (
        25.0, 10.0, "povey")


def test_every_option_is_in_the_settings_and_changes_them():
    default = ClassicalFeatureEncoder("mel_spectrogram")
    narrow = ClassicalFeatureEncoder("mel_spectrogram", feature_options={"n_mels": 40, "f_min": 50.0})
    assert narrow.description.settings["n_mels"] == 40 and narrow.description.settings["f_min"] == 50.0
    assert narrow.description != default.description
    assert narrow.encode(clips()[:1]).hidden_states[0].shape[-1] == 40
    # No parameter of the feature function is missing from the settings, and each holds the function's default.
    for name in CLASSICAL_FEATURES:
        settings = ClassicalFeatureEncoder(name).description.settings
        for key, parameter in inspect.signature(FUNCTIONS[name]).parameters.items():
            if parameter.kind is parameter.KEYWORD_ONLY:
                assert settings[key] == parameter.default, (name, key)


def test_delta_order_can_be_chosen():
    assert ClassicalFeatureEncoder("mfcc", delta_order=0).encode(clips()[:1]).hidden_states[0].shape[-1] == 13
    with_deltas = ClassicalFeatureEncoder("stft", delta_order=1, delta_win_length=7)
    assert with_deltas.encode(clips()[:1]).hidden_states[0].shape[-1] == 514
    assert with_deltas.description.settings["delta_win_length"] == 7


def test_cmvn_normalises_each_clip_over_its_own_frames(caplog):
    with caplog.at_level(logging.WARNING, logger="speat_metric.adapters.classical"):
        encoder = ClassicalFeatureEncoder("mfcc", cmvn=True)
    assert "float noise" in caplog.text and encoder.description.settings["cmvn"] is True
    output = encoder.encode(clips())
    for row in range(len(LENGTHS)):
        valid = output.hidden_states[0][row][output.frame_mask[row]].double()
        torch.testing.assert_close(valid.mean(dim=0), torch.zeros(39, dtype=torch.float64), rtol=0, atol=1e-5)
        torch.testing.assert_close(valid.std(dim=0), torch.ones(39, dtype=torch.float64), rtol=1e-4, atol=0)


def test_seeded_dither_is_reproducible():
    options = {"dither": 1e-4, "seed": 3}
    first = ClassicalFeatureEncoder("mfcc", feature_options=options).encode(clips()[:1]).hidden_states[0]
    again = ClassicalFeatureEncoder("mfcc", feature_options=options).encode(clips()[:1]).hidden_states[0]
    torch.testing.assert_close(first, again, rtol=0, atol=0)


def test_is_a_speech_encoder():
    encoder = ClassicalFeatureEncoder("stft")
    assert isinstance(encoder, SpeechEncoder) and encoder.supports_padding is True
    assert encoder.device == torch.device("cpu")


@pytest.mark.parametrize("make, message", [
    (lambda: ClassicalFeatureEncoder("fbank"), "unknown classical feature 'fbank'; choose one of stft, spectrogram"),
    (lambda: ClassicalFeatureEncoder("stft", feature_options={"n_mels": 40}),
     r"feature_options \['n_mels'\] are not parameters of stft_magnitude \(feature 'stft'\); valid: n_fft"),
    (lambda: ClassicalFeatureEncoder("mfcc", feature_options={"sampling_rate": 8000}),
     "sampling_rate=8000: encoders take 16000 Hz waveforms"),
    (lambda: ClassicalFeatureEncoder("mfcc", feature_options={"dither": 1.0}),
     "dither=1.0 without a seed would make the 'mfcc' embeddings irreproducible"),
    (lambda: ClassicalFeatureEncoder("mfcc", delta_order=-1), "delta_order must be 0 or more, got -1"),
    (lambda: ClassicalFeatureEncoder("mfcc", delta_win_length=1), "delta_win_length must be at least 3, got 1"),
])
def test_bad_configuration(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_batches_name_the_clip():
    encoder = ClassicalFeatureEncoder("mfcc")
    with pytest.raises(ValueError, match="encode needs at least one waveform, got an empty batch"):
        encoder.encode([])
    with pytest.raises(features.FeatureError, match=r"clip 1 of the batch: waveform has 300 samples, fewer than one "
                                                    r"25 ms frame .*\(feature 'mfcc'\)"):
        encoder.encode([np.zeros(16_000, np.float32), np.zeros(300, np.float32)])


def test_docstring_examples_run():
    result = doctest.testmod(classical)
    assert result.attempted >= 3 and result.failed == 0
