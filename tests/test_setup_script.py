"""scripts/setup.sh's choice of torch build, run as a user runs it (``--print-torch-install`` prints the pip
arguments instead of installing)."""

import os
import socket
import subprocess
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parent.parent / "scripts" / "setup.sh"


def torch_install(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SETUP), "--print-torch-install"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", **env}, cwd=tmp_path)


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/whl/cpu"


def fake_nvidia_smi(folder: Path) -> None:
    tool = folder / "nvidia-smi"
    tool.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-0)'\n")
    tool.chmod(0o755)


def test_no_gpu_takes_the_cpu_index_when_it_answers(tmp_path, static_server):
    static_server.add_file("/whl/cpu/torch/", b"<html></html>", content_type="text/html")
    completed = torch_install(tmp_path, SPEAT_TORCH_CPU_INDEX=f"{static_server.url}/whl/cpu")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["torch==2.13.0", "--index-url", f"{static_server.url}/whl/cpu"]
    assert "would install the CPU build" in completed.stderr and "installing" not in completed.stderr


def test_an_unreachable_cpu_index_falls_back_to_the_default_index(tmp_path):
    completed = torch_install(tmp_path, SPEAT_TORCH_CPU_INDEX=closed_port_url())
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["torch==2.13.0"]
    assert "cannot be reached; would install torch 2.13.0 from the default index" in completed.stderr


@pytest.mark.parametrize("how", ["variable", "gpu present"])
def test_cuda_on_request_or_when_a_gpu_is_present(tmp_path, static_server, how):
    static_server.add_file("/whl/cpu/torch/", b"<html></html>", content_type="text/html")
    env = {"SPEAT_TORCH_CPU_INDEX": f"{static_server.url}/whl/cpu"}
    if how == "variable":
        env["SPEAT_TORCH"] = "cuda"
    else:
        fake_nvidia_smi(tmp_path)
    completed = torch_install(tmp_path, **env)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["torch==2.13.0"]
    assert "the CUDA build" in completed.stderr


def test_cpu_on_request_even_with_a_gpu(tmp_path, static_server):
    static_server.add_file("/whl/cpu/torch/", b"<html></html>", content_type="text/html")
    fake_nvidia_smi(tmp_path)
    completed = torch_install(tmp_path, SPEAT_TORCH="cpu", SPEAT_TORCH_CPU_INDEX=f"{static_server.url}/whl/cpu")
    assert "--index-url" in completed.stdout.split()


def test_a_bad_choice_is_one_line_and_installs_nothing(tmp_path):
    completed = torch_install(tmp_path, SPEAT_TORCH="gpu")
    assert completed.returncode == 2 and completed.stdout == ""
    assert completed.stderr.strip() == "scripts/setup.sh: SPEAT_TORCH must be auto, cpu or cuda, got 'gpu'"
