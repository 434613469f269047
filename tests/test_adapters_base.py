"""The adapter interface's helpers (speat_metric.adapters.base): dtypes, padding, frame masks, the padding check,
weight hashes and parameter counts, each against a computation done here by hand."""

from collections.abc import Sequence

import numpy as np
import pytest
import torch
from torch import nn

from speat_metric.adapters.base import (
    SAMPLING_RATE,
    EncoderOutput,
    SpeechEncoder,
    count_parameters,
    frames_mask,
    pad_batch,
    padding_is_harmless,
    torch_dtype,
    weights_sha256,
)
from speat_metric.defaults import DTYPES

HOP = 320  # samples per frame of the toy encoders below (20 ms at 16 kHz)


class FramewiseEncoder(SpeechEncoder):
    """Each frame is a function of its own samples only: padding cannot reach the valid frames."""

    def encode(self, waveforms: Sequence[np.ndarray]) -> EncoderOutput:
        batch, _ = pad_batch(waveforms)
        frames = batch[:, : batch.shape[1] // HOP * HOP].reshape(len(waveforms), -1, HOP)
        features = torch.stack([frames.mean(-1), frames.std(-1)], dim=-1)
        return EncoderOutput([features, features * 2], frames_mask([len(w) // HOP for w in waveforms],
                                                                   features.shape[1]))


class WholeBatchNormEncoder(FramewiseEncoder):
    """Normalises each clip over all its frames, padding included (the data2vec-audio kind of leak)."""

    def encode(self, waveforms: Sequence[np.ndarray]) -> EncoderOutput:
        output = super().encode(waveforms)
        layers = [(layer - layer.mean(1, keepdim=True)) / (layer.std(1, keepdim=True) + 1e-5)
                  for layer in output.hidden_states]
        return EncoderOutput(layers, output.frame_mask)


class MiscountingEncoder(FramewiseEncoder):
    """Says every clip of a batch is as long as the longest one."""

    def encode(self, waveforms: Sequence[np.ndarray]) -> EncoderOutput:
        output = super().encode(waveforms)
        return EncoderOutput(output.hidden_states, torch.ones_like(output.frame_mask))


def test_torch_dtype_maps_every_offered_dtype():
    for name in DTYPES:
        dtype = torch_dtype(name)
        assert isinstance(dtype, torch.dtype) and str(dtype) == f"torch.{name}"


@pytest.mark.parametrize("name", ["float64", "fp16", "Float32", ""])
def test_torch_dtype_refuses_other_names(name):
    with pytest.raises(ValueError, match=rf"dtype must be one of float32, float16, bfloat16, got {name!r}$"):
        torch_dtype(name)


def test_pad_batch_right_pads_with_zeros_and_marks_the_real_samples():
    rng = np.random.default_rng(1)
    waveforms = [rng.normal(size=3), rng.normal(size=5).astype(np.float32), rng.normal(size=1)]
    batch, mask = pad_batch(waveforms)
    assert batch.shape == mask.shape == (3, 5)
    assert batch.dtype == torch.float32 and mask.dtype == torch.bool
    for row, waveform in enumerate(waveforms):
        expected = np.zeros(5, dtype=np.float32)
        expected[: len(waveform)] = waveform
        np.testing.assert_array_equal(batch[row].numpy(), expected)
        assert mask[row].tolist() == [index < len(waveform) for index in range(5)]


def test_frames_mask_marks_each_rows_leading_frames():
    counts = [4, 0, 7, 2]
    mask = frames_mask(iter(counts), 7)  # any iterable, e.g. a generator
    assert mask.dtype == torch.bool and mask.shape == (4, 7)
    assert mask.tolist() == [[frame < count for frame in range(7)] for count in counts]
    assert mask.sum(1).tolist() == counts


def test_padding_is_harmless_tells_a_framewise_encoder_from_a_leaking_one():
    assert padding_is_harmless(FramewiseEncoder())
    assert not padding_is_harmless(WholeBatchNormEncoder())
    assert not padding_is_harmless(MiscountingEncoder())


def test_padding_is_harmless_uses_the_tolerance():
    class Nudged(FramewiseEncoder):  # a clip in a batch of two differs from itself alone by 1e-3
        def encode(self, waveforms):
            output = super().encode(waveforms)
            shift = 1e-3 if len(waveforms) > 1 else 0.0
            return EncoderOutput([layer + shift for layer in output.hidden_states], output.frame_mask)

    assert not padding_is_harmless(Nudged())
    assert padding_is_harmless(Nudged(), tolerance=1e-2)


def test_speech_encoder_defaults():
    encoder = FramewiseEncoder()
    assert encoder.device == torch.device("cpu") and encoder.supports_padding and encoder.profile == "hf"
    output = encoder.encode([np.zeros(SAMPLING_RATE // 10, dtype=np.float32)])
    assert output.frame_mask.shape == (1, SAMPLING_RATE // 10 // HOP)
    with pytest.raises(TypeError, match="abstract"):
        SpeechEncoder()


def _tiny(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def test_weights_sha256_is_a_function_of_the_weights():
    first, same = _tiny(0), _tiny(0)
    assert weights_sha256(first) == weights_sha256(same)
    assert len(weights_sha256(first)) == 64 and int(weights_sha256(first), 16) >= 0
    assert weights_sha256(_tiny(1)) != weights_sha256(first)

    with torch.no_grad():
        same[2].weight[1, 3] += 1e-6  # one value, barely
    assert weights_sha256(same) != weights_sha256(first)


def test_weights_sha256_covers_buffers_dtypes_and_names_but_not_registration_order():
    reference = weights_sha256(_tiny(0))
    buffered = _tiny(0)
    buffered[1].running_mean[0] = 0.5  # a buffer, not a parameter
    assert weights_sha256(buffered) != reference
    assert weights_sha256(_tiny(0).half()) != weights_sha256(_tiny(0))

    class Pair(nn.Module):
        def __init__(self, names: tuple[str, str]):
            super().__init__()
            for name in names:
                self.register_parameter(name, nn.Parameter(torch.arange(3.0) if name == "a" else torch.ones(2)))

    assert weights_sha256(Pair(("a", "b"))) == weights_sha256(Pair(("b", "a")))
    renamed = Pair(("a", "b"))
    renamed.register_parameter("c", renamed._parameters.pop("b"))  # same values under another name
    assert weights_sha256(renamed) != weights_sha256(Pair(("a", "b")))


def test_count_parameters_counts_each_parameter_once_and_no_buffers():
    model = _tiny(0)
    assert count_parameters(model) == (3 * 4 + 4) + (4 + 4) + (4 * 2 + 2)  # BatchNorm: weight and bias only
    shared = nn.Linear(5, 5)
    assert count_parameters(nn.Sequential(shared, nn.ReLU(), shared)) == 5 * 5 + 5
    assert count_parameters(nn.ReLU()) == 0
