"""The Space's API through gradio_client, with `speat space --repo ORG/NAME --evaluate-models` started by the test
over the Hub dataset of `speat hub push-results` (served by the Hub-compatible test server)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
from http_servers import HubServer
from test_space_browser import free_port, space_environment, wait_until_serving
from test_space_fixtures import FOREIGN, bundled, of, shifted, with_model

from speat_metric.formatting import format_d
from speat_metric.statistics import speat_test

pytestmark = pytest.mark.slow  # a real Space server, through gradio_client

gradio_client = pytest.importorskip("gradio_client")

REPO_ID = "speat/results"
COLUMNS = ["gender size", "gender p", "gender CI", "family"]
FILTERS_DEFAULT = ["synthetic", "", [], [], [], "mean over layers", COLUMNS, "mean |d|, least biased first", 0]
D_FORMAT = re.compile(r"^[+-]\d\.\d\d$")


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    with HubServer() as server:
        records = bundled()
        files = {f"{'records/' if index % 2 else ''}{record.file_name}": record.to_json().encode()
                 for index, record in enumerate(records)}
        server.create_repo(REPO_ID, repo_type="dataset")
        server.commit(REPO_ID, {**files, "records/foreign.json": json.dumps(FOREIGN).encode()}, repo_type="dataset")
        yield server


@pytest.fixture(scope="module")
def client(hub, tmp_path_factory) -> Iterator:
    root = tmp_path_factory.mktemp("space-api")
    port = free_port()
    environment = space_environment(root, port, HF_ENDPOINT=hub.url)
    environment.pop("HF_HUB_OFFLINE")
    log = root / "space.log"
    with open(log, "w") as output:
        process = subprocess.Popen([sys.executable, "-m", "speat_metric.cli", "space", "--repo", REPO_ID, "--port",
                                    str(port), "--evaluate-models"], stdout=output, stderr=subprocess.STDOUT,
                                   env=environment)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(url, process, log)
        yield gradio_client.Client(url, verbose=False)
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert "speat space: serving Hub dataset speat/results on http://127.0.0.1:" in log.read_text()


def _file(output: str | dict) -> str:
    """The local path of a download button's output (an update carries it as its value)."""
    value = output.get("value", output) if isinstance(output, dict) else output
    return value.get("path", value) if isinstance(value, dict) else value


def _exported(output: str | dict) -> list[dict]:
    """The rows of the leaderboard's JSON download."""
    with open(_file(output), encoding="utf-8") as file:
        return json.load(file)


def test_the_api_names_its_endpoints(client):
    endpoints = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/leaderboard", "/model_detail", "/explain", "/speat_upload", "/evaluate_model", "/refresh",
            "/training_plot", "/pruning_plot", "/distillation_plot", "/layer_plot"} <= endpoints


def test_leaderboard_of_the_hub_records(client):
    table, status, _, _, csv_file, json_file = client.predict(*FILTERS_DEFAULT, api_name="/leaderboard")
    rows = _exported(json_file)
    assert status.startswith(f"{len(rows)} rows, ranked by mean |d|, least biased first.\n\nAudio: results on "
                             "each test's reference audio: gender ")
    names = [row["model"] for row in rows]
    folded = {alias for row in rows for alias in row["same as"].split("; ") if alias}
    expected = {record.model_label for record in bundled() if record.pooling.get("layer") is None}
    assert set(names) | folded == expected and not set(names) & folded
    assert 'data-sort="gender CI"' in table and 'data-sort="age p"' not in table  # the columns asked for
    cells = re.findall(r'data-label="gender d"[^>]*>([^<]+)<', table)
    assert cells == [format_d(row["gender d"]) for row in rows] and all(D_FORMAT.match(cell) for cell in cells)
    with open(_file(csv_file), encoding="utf-8") as file:
        assert file.readline().startswith("model,variant,same as,stimuli")
    table, status, *_ = client.predict("synthetic", "", ["classical feature"], [], [], "mean over layers", COLUMNS,
                                       "model, A to Z", 2, api_name="/leaderboard")
    assert status.startswith("Showing the first 2 of 4 rows, ranked by model, A to Z")
    assert re.findall(r'class="model-name">([^<]+)<', table) == ["mel_spectrogram", "mfcc"]


def test_model_detail_and_explanation(client):
    plot, detail = client.predict("mfcc", "synthetic", api_name="/model_detail")
    assert "speat evaluate mfcc --stimuli demo --tests gender,age,native --permutations 10000 --seed 0" in detail
    assert "<img" in plot and "undefined" not in plot
    summary, figure, table = client.predict(0, api_name="/explain")
    assert "Targets that move d most" in summary
    alt = re.search(r'<img [^>]*alt="([^"]*)"', figure).group(1)
    assert len(alt) > 40 and "undefined" not in alt
    assert table["headers"] == ["role", "group", "stimulus", "s(w)", "influence on d"] and len(table["data"]) == 24


def test_upload_endpoint_returns_the_evaluate_modules_result(client, tmp_path):
    rng = np.random.default_rng(5)
    sets = {"X": rng.normal(0.2, 1, (5, 4)), "Y": rng.normal(0, 1, (6, 4)), "A": rng.normal(1, 1, (4, 4)),
            "B": rng.normal(-1, 1, (5, 4))}
    np.savez(tmp_path / "sets.npz", **sets)
    summary, result, figure, table = client.predict(gradio_client.handle_file(str(tmp_path / "sets.npz")), 3000, 2,
                                                    api_name="/speat_upload")
    expected = speat_test(sets["X"], sets["Y"], sets["A"], sets["B"], num_permutations=3000, seed=2)
    assert result["effect_size"] == pytest.approx(expected.effect_size, rel=1e-12)
    assert result["p_value"] == pytest.approx(expected.p_value, rel=1e-12)
    assert result["exact"] == expected.exact and result["seed"] == 2 and len(table["data"]) == 11
    (tmp_path / "bad.csv").write_text("group,d0\nX,1\nQ,2\n")
    summary, result, figure, table = client.predict(gradio_client.handle_file(str(tmp_path / "bad.csv")), 100, 0,
                                                    api_name="/speat_upload")
    assert summary.startswith("**⚠ Could not use `bad.csv`:**") and "group must be X, Y, A or B" in summary
    assert result is None and not figure  # the previous file's result is not left under the bad file's name


def test_a_queued_model_evaluation_joins_the_records(client):
    status, update = client.predict("spectrogram", "demo", ["gender"], 500, api_name="/evaluate_model")
    frame = update["value"]
    assert "Evaluated **spectrogram** on 1 test(s)" in status
    row = dict(zip(frame["headers"], frame["data"][0]))
    assert row["model"] == "spectrogram" and D_FORMAT.match(row["gender d"]) and "age d" not in row
    status, update = client.predict("../etc/passwd", "demo", ["gender"], 500, api_name="/evaluate_model")
    assert status.startswith("**⚠ Could not evaluate `../etc/passwd`:**") and "is not a Hub model id" in status
    assert update["visible"] is False  # the previous evaluation's table is not left under this request


def test_refresh_reads_new_hub_records_and_keeps_warning_about_foreign_files(client, hub):
    base = of(bundled(), "mfcc", "age")
    new = shifted(base, 0.3, model=with_model(base, "speat-tester/new-model"))
    hub.commit(REPO_ID, {f"records/new/{new.file_name}": new.to_json().encode()}, repo_type="dataset")
    outputs = client.predict(*FILTERS_DEFAULT, None, [], None, None, None, api_name="/refresh")
    text = json.dumps(outputs)
    assert "speat-tester/new-model" in text
    assert "records/foreign.json skipped: not a speat evaluation record" in text
    assert "evaluated in this Space" in text  # the earlier evaluation is kept over a refresh
