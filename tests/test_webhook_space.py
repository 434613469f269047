"""The Docker Space of the webhook service: its README header, Dockerfile and requirements agree, and its app.py
starts the service (a real process answering /healthz, reconciling at start)."""

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from http_servers import HubServer
from hub_testing import hub_env
from huggingface_hub import SpaceCard

from speat_metric.cli import build_parser
from speat_metric.hub.spaces import SpeatPackage
from speat_metric.hub.webhook.space import space_files

SPACE = Path(__file__).parents[1] / "hub_scripts" / "webhook_space"
TOKEN = "hf_spaceTOKEN0123456789abcdef"


def load_app():
    spec = importlib.util.spec_from_file_location("webhook_space_app", SPACE / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_space_is_a_docker_space_on_the_port_the_app_uses():
    card = SpaceCard.load(SPACE / "README.md")
    assert card.data.sdk == "docker" and card.data.app_port == 7860
    dockerfile = (SPACE / "Dockerfile").read_text()
    assert re.search(r"^EXPOSE 7860$", dockerfile, re.MULTILINE)
    assert 'CMD ["python", "app.py"]' in dockerfile
    assert dockerfile.index("COPY --chown=user . .") < dockerfile.index("-r requirements.txt")  # the wheel is there
    files = space_files(SpeatPackage(release="speat==1.0"))
    requirements = [line for line in files["requirements.txt"].splitlines() if line and not line.startswith("#")]
    assert requirements[0] == "--extra-index-url https://download.pytorch.org/whl/cpu"
    assert requirements[-1] == "speat[hub]==1.0" and set(files) == {"README.md", "Dockerfile", "app.py",
                                                                      "requirements.txt"}
    assert load_app().service_arguments({})[:5] == ["hub", "webhook", "--host", "0.0.0.0", "--port"]


def test_the_app_command_line_is_a_valid_speat_command():
    arguments = load_app().service_arguments({"PORT": "8080", "SPEAT_WEBHOOK_WORKERS": "2",
                                              "SPEAT_WEBHOOK_ARGS": "--tests gender --permutations 5000 --watch org:x"})
    args = build_parser().parse_args(arguments)
    assert (args.host, args.port, args.workers, args.watch) == ("0.0.0.0", 8080, 2, ["org:x"])
    assert (args.tests, args.permutations, args.stimuli) == ("gender", 5000, "speat")


def test_the_app_starts_the_service(tmp_path):
    with HubServer(tokens={TOKEN: "speat-bot-user"}) as hub:
        env = hub_env(hub, tmp_path, HF_TOKEN=TOKEN, SPEAT_WEBHOOK_SECRET="space-SECRET-0123456789", PORT="0",
                      SPEAT_WEBHOOK_DATA=str(tmp_path / "data"), SPEAT_WEBHOOK_ARGS="--host 127.0.0.1")
        for key in ("HF_HOME", "SPEAT_CACHE"):  # the app puts them under SPEAT_WEBHOOK_DATA
            env.pop(key)
        process = subprocess.Popen([sys.executable, str(SPACE / "app.py")], cwd=tmp_path, env=env,
                                   stderr=subprocess.PIPE, text=True)
        try:
            for line in process.stderr:
                if '"service.listening"' in line:
                    port = json.loads(line)["port"]
                    break
            else:
                raise AssertionError(f"the app exited with {process.wait()}")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    health = httpx.get(f"http://127.0.0.1:{port}/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            assert health.json() == {"status": "ok"}
            status = httpx.get(f"http://127.0.0.1:{port}/status").json()
            assert status["workers"] == {"configured": 1, "alive": 1}
            deadline = time.monotonic() + 60  # the token's own account (no model here) is reconciled at start
            while status["reconciliation"]["state"] != "done" and time.monotonic() < deadline:
                time.sleep(0.1)
                status = httpx.get(f"http://127.0.0.1:{port}/status").json()
            assert status["reconciliation"] == {"state": "done", "queued": 0}
            assert (tmp_path / "data").is_dir()
        finally:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(60)
