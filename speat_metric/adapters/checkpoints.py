"""Reading research checkpoints (``torch.save`` files) safely, with errors that name the file and the keys."""

from __future__ import annotations

import argparse
import pathlib
import pickle
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy
import numpy.dtypes
import torch
from torch import nn

from speat_metric.adapters.base import ModelLoadError

try:
    from numpy._core.multiarray import _reconstruct as reconstruct_array  # NumPy 2
except ImportError:  # NumPy 1.26
    from numpy.core.multiarray import _reconstruct as reconstruct_array

SAFE_CHECKPOINT_GLOBALS = [argparse.Namespace, pathlib.PosixPath, pathlib.WindowsPath, numpy.ndarray, numpy.dtype,
                           reconstruct_array, *(kind for kind in vars(numpy.dtypes).values() if isinstance(kind, type))]
"""What research checkpoints pickle besides tensors that is data, not code: training arguments, paths, NumPy arrays
(rebuilt from their dtype and bytes; a runner's random state is some)."""


def load_torch_checkpoint(path: str | Path, *, kind: str, trust_checkpoint: bool = False) -> Any:
    """Read a ``torch.save`` file on the CPU, refusing arbitrary pickled code unless told to trust the file.

    Released research checkpoints often pickle an ``argparse.Namespace`` of training arguments, paths, or NumPy
    arrays (a runner's random state); those classes are allowed (an array is rebuilt from its dtype and bytes).
    Anything else outside torch's safe list needs ``trust_checkpoint=True``, which loads with
    ``weights_only=False`` and so runs the file's pickled code: only for trusted files. `kind` names the model family
    in messages, e.g. ``"MelHuBERT"``.

    Raises:
        ModelLoadError: the file is missing, unreadable, or needs `trust_checkpoint`.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{kind} checkpoint {str(path)!r} does not exist or is not a file: pass the path of "
                             "the downloaded checkpoint file.")
    try:
        if trust_checkpoint:
            return torch.load(path, map_location="cpu", weights_only=False)
        with torch.serialization.safe_globals(SAFE_CHECKPOINT_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        refused = re.findall(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
        if "Weights only load failed" in str(error) and refused:
            raise ModelLoadError(
                f"{kind} checkpoint {str(path)!r} pickles Python objects that are unsafe to load "
                f"({', '.join(refused)}). If you trust where the file comes from, pass trust_checkpoint=True."
            ) from error
        raise ModelLoadError(f"{kind} checkpoint {str(path)!r} is not a readable PyTorch file ({error}); "
                             "download it again.") from error
    except Exception as error:  # torch raises KeyError, RuntimeError, EOFError... for damaged files
        raise ModelLoadError(f"{kind} checkpoint {str(path)!r} is not a readable PyTorch file "
                             f"({type(error).__name__}: {error}); download it again.") from error


def describe_keys(keys: Sequence[str] | set[str], limit: int = 8) -> str:
    """A short, sorted listing of state-dict keys for error messages."""
    ordered = sorted(keys)
    shown = ", ".join(ordered[:limit])
    return shown + (f", ... ({len(ordered)} in all)" if len(ordered) > limit else "")


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, kind: str, path: str | Path) -> None:
    """Raise a ModelLoadError naming the file and the keys/shapes when `state_dict` does not fit `model`."""
    expected = model.state_dict()
    missing = set(expected) - set(state_dict)
    unexpected = set(state_dict) - set(expected)
    if missing or unexpected:
        found = (("missing", missing), ("unexpected", unexpected))
        parts = [f"{label} keys: {describe_keys(keys)}" for label, keys in found if keys]
        raise ModelLoadError(f"{str(path)!r} is not a {kind} checkpoint this adapter can read ({'; '.join(parts)}). "
                             f"Check that the file is a released {kind} checkpoint.")
    for key, tensor in expected.items():
        if tuple(state_dict[key].shape) != tuple(tensor.shape):
            raise ModelLoadError(f"{str(path)!r}: tensor {key!r} has shape {tuple(state_dict[key].shape)} but the "
                                 f"configuration implies {tuple(tensor.shape)}; the checkpoint's configuration and "
                                 "weights disagree.")
