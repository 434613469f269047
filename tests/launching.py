"""`accelerate launch` for the tests: two CPU processes on a free port, so runs never collide on port 29500."""

from __future__ import annotations

import os
import shutil
import socket
import sys


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def accelerate_launch(*arguments: str, num_processes: int = 2) -> list[str]:
    """The command line of ``accelerate launch`` with `num_processes` CPU processes (gloo) running `arguments`."""
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable)) or "accelerate"
    return [accelerate, "launch", "--multi_gpu", "--num_processes", str(num_processes), "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()), *arguments]
