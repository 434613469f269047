"""Frame pooling ignores padding; layer pooling picks the right layers."""

import numpy as np
import pytest
import torch

from speat_metric.adapters.base import EncoderOutput, frames_mask
from speat_metric.pooling import LayerPooling, NoFramesError, pool_frames


def output_with_padding():
    rng = np.random.default_rng(0)
    lengths = [5, 3]
    layers = [torch.tensor(rng.normal(size=(2, 5, 4)), dtype=torch.float32) for _ in range(3)]
    for layer in layers:
        layer[1, 3:] = 1e6  # padding frames that must not count
    return EncoderOutput(layers, frames_mask(lengths, 5)), layers, lengths


def test_mean_and_max_over_valid_frames_only():
    output, layers, lengths = output_with_padding()
    mean, maximum = pool_frames(output, "mean"), pool_frames(output, "max")
    assert mean.shape == maximum.shape == (2, 3, 4)
    for clip, length in enumerate(lengths):
        for index, layer in enumerate(layers):
            frames = layer[clip, :length].numpy()
            np.testing.assert_allclose(mean[clip, index], frames.mean(axis=0), rtol=1e-6)
            np.testing.assert_allclose(maximum[clip, index], frames.max(axis=0), rtol=1e-6)


def test_unknown_frame_pooling():
    with pytest.raises(ValueError, match="frame pooling must be one of mean, max, got 'median'"):
        pool_frames(output_with_padding()[0], "median")


def test_clip_without_frames_is_an_error_that_says_which():
    output = EncoderOutput([torch.zeros(3, 2, 3)], frames_mask([2, 0, 0], 2))
    with pytest.raises(NoFramesError, match=r"clip\(s\) \[1, 2\] of the batch gave no frames") as error:
        pool_frames(output)
    assert error.value.indices == [1, 2]


def test_layer_views():
    per_layer = np.arange(2 * 4 * 3, dtype=float).reshape(2, 4, 3)
    (layer, mean), = LayerPooling("mean").views(per_layer)
    assert layer is None and np.allclose(mean, per_layer.mean(axis=1))
    assert LayerPooling("last").views(per_layer)[0][0] == 3
    (layer, chosen), = LayerPooling("layer", layer=-2).views(per_layer)
    assert layer == 2 and np.array_equal(chosen, per_layer[:, 2])
    assert [index for index, _ in LayerPooling("per-layer").views(per_layer)] == [0, 1, 2, 3]


@pytest.mark.parametrize("mode,layer,message", [
    ("median", None, "layer pooling must be one of mean, last, layer, per-layer"),
    ("layer", None, "--pooling layer tests one layer: give it with --layer N"),
    ("mean", 3, "--layer 3 picks the layer of --pooling layer, but the pooling is 'mean'; add --pooling layer"),
])
def test_bad_layer_pooling(mode, layer, message):
    with pytest.raises(ValueError, match=message):
        LayerPooling(mode, layer)


def test_layer_out_of_range():
    with pytest.raises(ValueError, match=r"--layer 4: the model has 4 layers \(0..3, 0 being the input"):
        LayerPooling("layer", layer=4).views(np.zeros((2, 4, 3)))
