"""The three Spaces as the Hub builds them, with no package index involved: each is published to the test Hub with
``speat hub publish-*``, its repository downloaded into an empty folder with huggingface_hub, its requirements
installed into a fresh environment (offline, ``--no-index``; the heavy dependencies borrowed, speat only from the
pushed wheel), its ``app.py`` started, and the result used: in headless Chromium, and for the module Space through
``evaluate.load("ORG/NAME")``.

A Gradio Space's builder installs ``requirements.txt`` before the rest of the repository is copied in, so its
requirements are installed from a folder holding that file alone; the Docker Space's Dockerfile copies everything
first, so its requirements are installed from the whole folder.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from environments import FreshEnvironment, fresh_environment
from http_servers import HubServer
from hub_testing import hub_env, run_speat
from test_space_browser import (
    BOARD_ROWS,
    CHROMIUM,
    CHROMIUM_FLAGS,
    free_port,
    playwright,
    wait_for_rows,
    wait_until_serving,
)
from test_space_fixtures import bundled, with_model

from speat_metric import __version__, speat_test

pytestmark = pytest.mark.slow

TOKEN = "hf_spacesBUILD0123456789abcdef"
OWNER = "lab"
RESULTS = f"{OWNER}/speat-results"
MODEL = f"{OWNER}/spaces-build-check"
WEBHOOK_SECRET = "space-build-SECRET-0123456789"

rng = np.random.default_rng(23)
X, Y, A, B = (rng.normal(loc, 1.0, size=(n, 4)) for loc, n in ((0.5, 6), (-0.1, 6), (0.9, 4), (-0.7, 4)))


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    with HubServer(tokens={TOKEN: OWNER}) as server:
        yield server


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("spaces")


@pytest.fixture(scope="module")
def env(hub, workspace) -> dict[str, str]:
    return hub_env(hub, workspace, HF_TOKEN=TOKEN)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


def publish(env: dict[str, str], cwd: Path, *arguments: str) -> str:
    started = time.perf_counter()
    completed = run_speat("hub", *arguments, env=env, cwd=cwd)
    assert completed.returncode == 0, completed.stderr[-3000:]
    print(f"\nspeat hub {arguments[0]}: {time.perf_counter() - started:.1f} s")
    return completed.stdout


def download(hub: HubServer, space_id: str, folder: Path) -> Path:
    """The Space's repository, as its builder clones it (the real client, the test Hub)."""
    from huggingface_hub import snapshot_download

    snapshot_download(space_id, repo_type="space", local_dir=folder, endpoint=hub.url, token=TOKEN)
    shutil.rmtree(folder / ".cache", ignore_errors=True)
    return folder


def build(space: Path, root: Path, *, requirements_only: bool) -> FreshEnvironment:
    """Install the Space's requirements into a fresh environment as its builder does."""
    started = time.perf_counter()
    environment = fresh_environment(root / "venv")
    where = space
    if requirements_only:
        where = root / "builder"
        where.mkdir()
        shutil.copy(space / "requirements.txt", where)
    installed = environment.pip_install("-r", "requirements.txt", cwd=where)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    print(f"\nfresh environment + pip install -r requirements.txt: {time.perf_counter() - started:.1f} s")
    return environment


def installed_from(environment: FreshEnvironment, cwd: Path) -> dict:
    """Where the environment's speat came from (PEP 610), and the file it is imported from."""
    probe = environment.run(environment.python, "-c", (
        "import json, importlib.metadata as m, speat_metric\n"
        "print(json.dumps({'direct_url': json.loads(m.distribution('speat').read_text('direct_url.json')),"
        " 'file': speat_metric.__file__}))"), cwd=cwd)
    assert probe.returncode == 0, probe.stderr
    return json.loads(probe.stdout)


def start(environment: FreshEnvironment, space: Path, log: Path, **settings: str) -> subprocess.Popen:
    with open(log, "w") as output:
        return subprocess.Popen([str(environment.python), "app.py"], cwd=space, stdout=output,
                                stderr=subprocess.STDOUT, env=environment.env(**settings))


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def gradio_settings(hub: HubServer, root: Path, port: int) -> dict[str, str]:
    return {"GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False",
            "HF_ENDPOINT": hub.url, "HF_HOME": str(root / "hf-home"), "SPEAT_CACHE": str(root / "speat-cache"),
            "MPLCONFIGDIR": str(root / "matplotlib"), "NO_PROXY": "127.0.0.1,localhost"}


def commits(hub: HubServer, repo_id: str) -> int:
    return len(hub.commit_messages(repo_id, repo_type="space"))


def test_the_leaderboard_space_builds_from_its_repository_and_shows_the_results_dataset(hub, workspace, env,
                                                                                        browser):
    results = workspace / "records"
    for record in bundled():
        if record.model.name == "mfcc" and record.pooling.get("layer") is None:
            record.replace(model=with_model(record, MODEL)).save(results)
    assert run_speat("hub", "push-results", str(results), "--repo", RESULTS, env=env, cwd=workspace).returncode == 0
    space_id = f"{OWNER}/leaderboard"
    said = publish(env, workspace, "publish-space", "--space", space_id, "--results-repo", RESULTS)
    assert f"{space_id}: committed" in said

    space = download(hub, space_id, workspace / "leaderboard")
    wheel = f"speat-{__version__}-py3-none-any.whl"
    assert {path.name for path in space.iterdir()} >= {"README.md", "app.py", "requirements.txt", wheel}
    card = yaml.safe_load((space / "README.md").read_text().split("---")[1])
    assert card["sdk"] == "gradio" and card["app_file"] == "app.py" and card["datasets"] == [RESULTS]
    assert card["sdk_version"] and card["python_version"] and "leaderboard" in card["tags"]
    requirement = (space / "requirements.txt").read_text().splitlines()[-1]
    assert requirement.startswith(f"speat[space] @ {hub.url}/spaces/{space_id}/resolve/main/{wheel}#sha256=")

    environment = build(space, workspace / "leaderboard-build", requirements_only=True)
    origin = installed_from(environment, workspace)
    assert origin["direct_url"]["url"] == f"{hub.url}/spaces/{space_id}/resolve/main/{wheel}"
    assert Path(origin["file"]).is_relative_to(environment.root)

    port = free_port()
    process = start(environment, space, workspace / "leaderboard.log",
                    **gradio_settings(hub, workspace / "leaderboard-run", port))
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(url, process, workspace / "leaderboard.log")
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(url)
        page.wait_for_selector(BOARD_ROWS)
        assert wait_for_rows(page, lambda names, count: count == 1) == [MODEL]
        assert RESULTS in page.locator("#data-source").inner_text()
        page.close()
    finally:
        stop(process)

    before = commits(hub, space_id)
    again = publish(env, workspace, "publish-space", "--space", space_id, "--results-repo", RESULTS)
    assert f"{space_id}: unchanged" in again and commits(hub, space_id) == before


def test_the_module_space_serves_evaluate_load_from_its_own_wheel(hub, workspace, env, browser):
    space_id = f"{OWNER}/speat"
    assert f"{space_id}: committed" in publish(env, workspace, "publish-module", "--space", space_id)
    space = download(hub, space_id, workspace / "module")
    environment = build(space, workspace / "module-build", requirements_only=True)
    assert Path(installed_from(environment, workspace)["file"]).is_relative_to(environment.root)

    expected = speat_test(X, Y, A, B, num_permutations=4000, seed=5)
    embeddings = [row.tolist() for part in (X, Y, A, B) for row in part]
    groups = [role for role, part in zip("XYAB", (X, Y, A, B)) for _ in part]
    code = ("import json, sys, evaluate\n"
            "embeddings, groups = json.loads(sys.argv[1])\n"
            f"speat = evaluate.load({space_id!r})\n"
            "print(json.dumps(speat.compute(embeddings=embeddings, groups=groups, num_permutations=4000, seed=5)))")
    loaded = environment.run(environment.python, "-c", code, json.dumps([embeddings, groups]), cwd=workspace,
                             env=environment.env(HF_ENDPOINT=hub.url, HF_HOME=str(workspace / "module-hf"),
                                                 HF_MODULES_CACHE=str(workspace / "module-modules")))
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    result = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert result["effect_size"] == pytest.approx(expected.effect_size, rel=1e-12)
    assert hub.count("GET", f"/spaces/{space_id}/resolve/main/speat.py") >= 1

    upload = workspace / "embeddings.csv"
    with open(upload, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["group", *(f"d{index}" for index in range(4))])
        for role, part in zip("XYAB", (X, Y, A, B)):
            writer.writerows([role, *row] for row in part.tolist())
    port = free_port()
    process = start(environment, space, workspace / "module.log", **gradio_settings(hub, workspace / "module-run",
                                                                                    port))
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(url, process, workspace / "module.log")
        page = browser.new_page()
        page.set_default_timeout(60_000)
        page.goto(url)
        page.locator("input[type=file]").first.set_input_files(str(upload))
        page.get_by_role("button", name="Submit").click()
        page.get_by_text("effect_size").first.wait_for()
        shown = page.locator(".json-holder, [data-testid=json]").first.inner_text()
        assert f"{expected.effect_size:.6f}"[:6] in shown.replace('"', "")
        page.close()
    finally:
        stop(process)


def test_the_webhook_docker_space_builds_from_its_repository_and_serves(hub, workspace, env, browser):
    space_id = f"{OWNER}/speat-webhook"
    assert f"{space_id}: committed" in publish(env, workspace, "publish-webhook", "--space", space_id)
    space = download(hub, space_id, workspace / "webhook")
    card = yaml.safe_load((space / "README.md").read_text().split("---")[1])
    assert card["sdk"] == "docker" and card["app_port"] == 7860
    dockerfile = (space / "Dockerfile").read_text()
    assert dockerfile.index("COPY --chown=user . .") < dockerfile.index("pip install")
    assert (space / "requirements.txt").read_text().splitlines()[-1] == f"./speat-{__version__}-py3-none-any.whl[hub]"

    environment = build(space, workspace / "webhook-build", requirements_only=False)
    port = free_port()
    data = workspace / "webhook-data"
    process = start(environment, space, workspace / "webhook.log", HF_ENDPOINT=hub.url, HF_TOKEN=TOKEN,
                    SPEAT_WEBHOOK_SECRET=WEBHOOK_SECRET, PORT=str(port), SPEAT_WEBHOOK_DATA=str(data),
                    SPEAT_WEBHOOK_ARGS="--host 127.0.0.1", NO_PROXY="127.0.0.1,localhost")
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (workspace / "webhook.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (workspace / "webhook.log").read_text()[-3000:]
            time.sleep(0.3)
        page = browser.new_page()
        page.goto(f"{url}/status")
        status = json.loads(page.locator("body").inner_text())
        assert status["workers"] == {"configured": 1, "alive": 1} and status["running_jobs"] == []
        assert status["reconciliation"]["state"] in ("pending", "running", "done")  # no job store: a start reconciles
        page.close()
    finally:
        stop(process)
    assert WEBHOOK_SECRET not in (workspace / "webhook.log").read_text()
    assert TOKEN not in (workspace / "webhook.log").read_text()


def test_a_private_gradio_space_needs_a_release_and_nothing_is_created(hub, workspace, env):
    completed = run_speat("hub", "publish-space", "--space", f"{OWNER}/private-board", "--private", env=env,
                          cwd=workspace)
    assert completed.returncode == 2
    assert completed.stderr.count("\n") == 1 and "pass --requirement SPEC" in completed.stderr
    assert ("space", f"{OWNER}/private-board") not in hub.repos


def test_a_release_replaces_the_wheel_and_a_dry_run_pushes_nothing(hub, workspace, env):
    space_id = f"{OWNER}/released-board"
    publish(env, workspace, "publish-space", "--space", space_id)
    wheel = f"speat-{__version__}-py3-none-any.whl"
    assert wheel in hub.files(space_id, repo_type="space")
    before = commits(hub, space_id)
    dry = publish(env, workspace, "publish-space", "--space", space_id, "--requirement", "speat==9.9.0", "--dry-run")
    assert f"deleted {wheel}" in dry and "+speat[space]==9.9.0" in dry and commits(hub, space_id) == before
    publish(env, workspace, "publish-space", "--space", space_id, "--requirement", "speat==9.9.0")
    files = hub.files(space_id, repo_type="space")
    assert wheel not in files and files["requirements.txt"].decode().splitlines()[-1] == "speat[space]==9.9.0"
    bad = run_speat("hub", "publish-space", "--space", space_id, "--requirement", "numpy==2.0", env=env,
                    cwd=workspace)
    assert bad.returncode == 2 and "must name the speat distribution itself" in bad.stderr
