"""Several processes under ``accelerate launch``: which device this process uses and whether it is the main one.

Plain single-process use never imports accelerate.
"""

from __future__ import annotations

import os

import torch


def default_device() -> str:
    """This process's device: its accelerator under ``accelerate launch``, else CUDA when present, else the CPU."""
    state = distributed_state()
    if state is not None:
        return str(state.device)
    return "cuda" if torch.cuda.is_available() else "cpu"


def is_main_process() -> bool:
    """False only in the secondary processes of a multi-process launch (they must not write results)."""
    state = distributed_state()
    return state is None or state.is_main_process


def distributed_state():
    """accelerate's process state when several processes run, else None (plain single-process use)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState

    # Without CUDA, accelerate only forms a multi-process group when told to use the CPU (gloo backend).
    return PartialState(cpu=not torch.cuda.is_available())
