"""A weight-pruned model given back to `speat prune weights`: its zeros stay zero through a whole run, and a
schedule that would start below its sparsity is refused with one line before training."""

from __future__ import annotations

from pathlib import Path

import pytest
import safetensors.torch
import torch
import transformers
from test_pruning_cli import TINY
from tiny_models import save_prunable_model, write_audio_folder, write_tone_test

from speat_metric.cli import main
from speat_metric.pruning.weights import WeightMasks, prunable_parameters

# the first check would be at step 3: a run stopped at step 2 (--max-steps) has only trained, nothing re-masks a
# regrown zero
ABOVE = TINY + """
schedule:
  warmup_steps: 3
  check_every: 3
  plateau_window: 1
  sparsity: [{increment: 0.6, until: 0.6}, {increment: 0.1, until: 0.7}]
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny wav2vec2 weight-pruned to 50% (its masked weights saved as zeros, as speat's checkpoints hold them)."""
    root = tmp_path_factory.mktemp("given-back")
    (root / "audio").mkdir()
    write_audio_folder(root / "audio")
    write_tone_test(root / "stimuli")
    save_prunable_model("wav2vec2", root / "dense")
    model = transformers.AutoModelForPreTraining.from_pretrained(root / "dense")
    with torch.no_grad():  # trained biases (a random model's are zero throughout, which is not taken as pruned)
        for name, parameter in prunable_parameters(model.wav2vec2):
            if name.endswith(".bias"):
                parameter.normal_(0, 0.05)
    WeightMasks(prunable_parameters(model.wav2vec2)).prune_to(0.5)
    model.save_pretrained(root / "pruned")
    transformers.AutoFeatureExtractor.from_pretrained(root / "dense").save_pretrained(root / "pruned")
    (root / "above.yaml").write_text(ABOVE)
    return root


def _prune(workspace: Path, out: str, *options: str) -> int:
    return main(["prune", "weights", str(workspace / "pruned"), "--data", str(workspace / "audio"), "--out",
                 str(workspace / out), "--tests", str(workspace / "stimuli" / "tone.json"), "--permutations", "20",
                 "--no-progress", *options])


def _layer_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The transformer layers' linear weights and biases, by name from ``encoder.layers`` (the given model is a
    Wav2Vec2ForPreTraining, the checkpoints the bare encoder)."""
    tensors = safetensors.torch.load_file(path)
    return {name[name.index("encoder.layers."):]: tensor for name, tensor in tensors.items()
            if "encoder.layers." in name and tensor.dim() in (1, 2) and "layer_norm" not in name}


def test_the_zeros_of_a_weight_pruned_model_stay_zero_through_training(workspace):
    given = _layer_tensors(workspace / "pruned" / "model.safetensors")
    zeros = sum(int((tensor == 0).sum()) for tensor in given.values())
    assert zeros >= 0.5 * sum(tensor.numel() for tensor in given.values()), "the given model is half zeros"

    assert _prune(workspace, "run", "--config", str(workspace / "above.yaml"), "--max-steps", "2") == 0
    trained = _layer_tensors(workspace / "run" / "checkpoint-2" / "model.safetensors")
    for name, tensor in given.items():
        assert not trained[name][tensor == 0].any(), f"zeros of {name} regrew"
    assert any(not torch.equal(trained[name], tensor) for name, tensor in given.items()), "two steps trained it"


def test_a_schedule_starting_below_the_models_sparsity_is_refused_in_one_line(workspace, capsys):
    (workspace / "tiny.yaml").write_text(TINY)  # the study's sparsity schedule, whose first target is 20%
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # its load report of the pre-training heads is not speat's output
    try:
        assert _prune(workspace, "refused", "--config", str(workspace / "tiny.yaml")) == 2
    finally:
        transformers.logging.set_verbosity(verbosity)
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    assert "is already 50.00% weight-pruned" in error and "first sparsity target is 20.00%" in error, error
    assert not (workspace / "refused" / "config.yaml").exists() and not (workspace / "refused" / "state").exists()
