"""speat_metric.distributed in a single process (the two-process launch is tested in test_embedding.py)."""

from __future__ import annotations

import subprocess
import sys


def test_a_single_process_is_the_main_one_on_the_default_device_without_accelerate():
    code = ("import sys, torch; from speat_metric.distributed import default_device, is_main_process\n"
            "print(is_main_process(), default_device() == ('cuda' if torch.cuda.is_available() else 'cpu'), "
            "'accelerate' in sys.modules)")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               env={"PATH": "/usr/bin:/bin", "WORLD_SIZE": "1"})
    assert completed.stdout.split() == ["True", "True", "False"], completed.stderr
