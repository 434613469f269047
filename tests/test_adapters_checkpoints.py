"""Reading research checkpoints (speat_metric.adapters.checkpoints): safe loading, and errors naming file and keys."""

import argparse
import pathlib
import re

import pytest
import torch
from torch import nn

from speat_metric.adapters.checkpoints import check_state_dict, describe_keys, load_torch_checkpoint
from speat_metric.errors import ModelLoadError


class Payload:
    """A class outside torch's safe list: pickling it makes a checkpoint that runs code on load."""

    def __init__(self, value: int) -> None:
        self.value = value


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))


def test_loads_a_state_dict_with_training_arguments_and_paths(tmp_path):
    state = _model().state_dict()
    arguments = argparse.Namespace(lr=1e-4, layers=2)
    path = tmp_path / "model.ckpt"
    torch.save({"model": state, "args": arguments, "out": pathlib.PosixPath("/runs/x")}, path)

    for given in (path, str(path)):
        loaded = load_torch_checkpoint(given, kind="MelHuBERT")
        assert loaded["args"] == arguments and loaded["out"] == pathlib.PosixPath("/runs/x")
        assert loaded["model"].keys() == state.keys()
        assert all(torch.equal(loaded["model"][key], state[key]) for key in state)


@pytest.mark.parametrize("make", [lambda root: root / "absent.ckpt", lambda root: root])
def test_a_missing_file_or_a_directory_is_named(tmp_path, make):
    path = make(tmp_path)
    with pytest.raises(ModelLoadError, match=rf"^M2D checkpoint '{re.escape(str(path))}' does not exist or is not a "
                                             "file: pass the path of the downloaded checkpoint file"):
        load_torch_checkpoint(path, kind="M2D")


def test_pickled_code_is_refused_unless_trusted(tmp_path):
    path = tmp_path / "unsafe.ckpt"
    torch.save({"payload": Payload(7)}, path)
    with pytest.raises(ModelLoadError, match=rf"^MelHuBERT checkpoint '{re.escape(str(path))}' pickles Python objects "
                                             r"that are unsafe to load \([\w.]*Payload\)\. If you trust where the "
                                             "file comes from, pass trust_checkpoint=True"):
        load_torch_checkpoint(path, kind="MelHuBERT")
    loaded = load_torch_checkpoint(path, kind="MelHuBERT", trust_checkpoint=True)
    assert isinstance(loaded["payload"], Payload) and loaded["payload"].value == 7


@pytest.mark.parametrize("trust", [False, True])
@pytest.mark.parametrize("damage", ["truncated", "not torch"])
def test_a_damaged_file_says_download_it_again(tmp_path, damage, trust):
    good = tmp_path / "good.ckpt"
    torch.save(_model().state_dict(), good)
    path = tmp_path / "bad.ckpt"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2] if damage == "truncated" else b"hello, world\n" * 9)
    with pytest.raises(ModelLoadError, match=rf"^M2D checkpoint '{re.escape(str(path))}' is not a readable PyTorch "
                                             r"file \(.+\); download it again\.$") as raised:
        load_torch_checkpoint(path, kind="M2D", trust_checkpoint=trust)
    assert "\n" not in str(raised.value)


def test_describe_keys_sorts_and_shortens():
    keys = {f"layer.{index}" for index in range(10)}
    ordered = sorted(keys)
    assert describe_keys(keys) == ", ".join(ordered[:8]) + ", ... (10 in all)"
    assert describe_keys(keys, limit=10) == ", ".join(ordered)
    assert describe_keys(["b", "a"]) == "a, b"
    assert describe_keys(["b", "a", "c"], limit=2) == "a, b, ... (3 in all)"
    assert describe_keys([]) == ""


def test_check_state_dict_accepts_a_fitting_state_dict():
    model = _model()
    assert check_state_dict(model, _model().state_dict(), kind="MelHuBERT", path="x.ckpt") is None


def test_check_state_dict_names_missing_and_unexpected_keys(tmp_path):
    model, path = _model(), tmp_path / "run.ckpt"
    state = dict(model.state_dict())
    del state["1.bias"]
    state["head.weight"] = torch.zeros(1)
    with pytest.raises(ModelLoadError, match=rf"^'{re.escape(str(path))}' is not a MelHuBERT checkpoint this adapter "
                                             r"can read \(missing keys: 1\.bias; unexpected keys: head\.weight\)\. "
                                             r"Check that the file is a released MelHuBERT checkpoint\.$"):
        check_state_dict(model, state, kind="MelHuBERT", path=path)

    only_missing = {key: value for key, value in model.state_dict().items() if key.startswith("0.")}
    with pytest.raises(ModelLoadError, match=r"\(missing keys: 1\.bias, 1\.weight\)\. Check"):
        check_state_dict(model, only_missing, kind="MelHuBERT", path=path)


def test_check_state_dict_names_a_tensor_of_the_wrong_shape():
    model = _model()
    state = dict(model.state_dict())
    state["0.weight"] = torch.zeros(4, 5)
    with pytest.raises(ModelLoadError, match=r"^'m2d\.pth': tensor '0\.weight' has shape \(4, 5\) but the "
                                             r"configuration implies \(4, 3\); the checkpoint's configuration and "
                                             "weights disagree\\.$"):
        check_state_dict(model, state, kind="M2D", path="m2d.pth")
