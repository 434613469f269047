"""The Space as a visitor uses it: the app started with ``python app.py`` in a copy of ``spaces_app/`` (settings from
the environment, speat installed) on 127.0.0.1, driven in headless Debian Chromium. test_spaces_build.py builds the
published Space itself, from its repository, in a fresh environment.

Screenshots go to the test's temporary folder, and also to ``$SPEAT_TEST_ARTIFACTS`` when that is set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from test_space_fixtures import SMALL, bundled, of, with_model, write_results_dir

from speat_metric.space.sources import read_record_files
from speat_metric.statistics import speat_test
from speat_metric.stimuli.fingerprints import stimulus_fingerprint

pytestmark = pytest.mark.slow  # a real Chromium drives the Space

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

playwright = pytest.importorskip("playwright.sync_api")
if not CHROMIUM.exists():
    pytest.skip("Debian chromium is not installed (.ci/run installs it)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def space_environment(root: Path, port: int, **settings: str) -> dict[str, str]:
    """The environment of a Space process: the settings, a private cache, nothing reaching the network."""
    return {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
            "GRADIO_ANALYTICS_ENABLED": "False", "HF_HOME": str(root / "hf-home"), "HF_HUB_OFFLINE": "1",
            "HF_UPDATE_DOWNLOAD_COUNTS": "0", "SPEAT_CACHE": str(root / "speat-cache"),
            "MPLCONFIGDIR": str(root / "matplotlib"), **settings}


def wait_until_serving(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Space exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "gradio_api/info", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"the Space did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("screenshots")
    yield folder
    target = os.environ.get("SPEAT_TEST_ARTIFACTS")
    if target:
        shutil.copytree(folder, Path(target) / "space", dirs_exist_ok=True)


OTHER_AUDIO = "models/other-audio-run"


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """The bundled records, derived compression records, a version-1 record, a run on other audio, and bad files."""
    base = of(bundled(), SMALL, "gender")
    clips = {**base.fingerprint["clips"], "Y": [*base.fingerprint["clips"]["Y"][1:], "f" * 64]}
    other = base.replace(model=with_model(base, OTHER_AUDIO), fingerprint={**stimulus_fingerprint(clips),
                                                                           "reference": None})
    return write_results_dir(tmp_path_factory.mktemp("results") / "results", extra=[other])


@pytest.fixture(scope="module")
def space(tmp_path_factory, results) -> Iterator[str]:
    """The Space folder copied elsewhere and started as a Space starts it, over `results`."""
    root = tmp_path_factory.mktemp("space")
    folder = shutil.copytree(REPO / "spaces_app", root / "space", ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    log = root / "space.log"
    with open(log, "w") as output:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=folder, stdout=output, stderr=subprocess.STDOUT,
                                   env=space_environment(root, port, SPEAT_SPACE_RESULTS=str(results)))
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(url, process, log)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def page(space, tmp_path_factory):
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(space)
        page.wait_for_selector(ROWS.format(table="leaderboard"))
        yield page
        browser.close()


def shoot(page, artifacts: Path, name: str, selector: str | None = None) -> None:
    path = artifacts / f"{name}.png"
    if selector:
        page.locator(selector).screenshot(path=path)
    else:
        page.screenshot(path=path, full_page=True)


# Gradio's dataframe draws only the rows in view (a virtual table): counts come from the grid's aria-rowcount.
ROWS = "#{table} .virtual-body [role=row]"
FIRST_CELLS = "#{table} .virtual-body [role=gridcell][data-col='0']"


def row_count(page, table: str = "leaderboard") -> int:
    return int(page.locator(f"#{table} [role=grid]").get_attribute("aria-rowcount")) - 1


def first_column(page, table: str = "leaderboard") -> list[str]:
    return [cell.strip() for cell in page.locator(FIRST_CELLS.format(table=table)).all_inner_texts()]


def wait_for_rows(page, predicate, timeout: float = 20) -> list[str]:
    """The first-column texts in view once `predicate(texts, row count)` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        names = first_column(page)
        if predicate(names, row_count(page)):
            return names
        time.sleep(0.2)
    raise AssertionError(f"leaderboard rows never matched; last seen {row_count(page)} rows: {first_column(page)}")


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def test_leaderboard_renders_the_bundled_results(page, artifacts, results):
    records, _ = read_record_files(results)
    pooled = [record for record in records if record.pooling.get("layer") is None]
    variants = {(record.model_label, json.dumps(record.compression, sort_keys=True)) for record in pooled}
    names = wait_for_rows(page, lambda names, count: count == len(variants))
    assert len(names) >= 10 and {name.removesuffix(" ⚠") for name in names} <= {label for label, _ in variants}
    assert {"stft", "mfcc", "random:melhubert-small"} <= set(names)  # the best ranked are in view
    assert page.locator("#synthetic-note").is_visible()
    headers = page.locator("#leaderboard thead").inner_text()
    for header in ("gender d", "age d", "native d", "gender p", "gender CI", "params (M)"):
        assert header in headers
    shoot(page, artifacts, "01-leaderboard")


def test_a_filter_narrows_the_rows_and_search_finds_models(page, artifacts):
    total = row_count(page)
    page.locator("#filter-family").get_by_label("classical feature").check()
    narrowed = wait_for_rows(page, lambda names, count: count == len(names) == 5)
    assert sorted(narrowed) == ["mel_spectrogram", "mfcc", "old/version-1-model", "spectrogram", "stft"]
    shoot(page, artifacts, "02-filtered")
    page.locator("#filter-family").get_by_label("classical feature").uncheck()
    wait_for_rows(page, lambda names, count: count == total)
    page.locator("#search textarea, #search input").first.fill("hubert; wavlm")
    found = wait_for_rows(page, lambda names, count: count == len(names) == 3)
    assert sorted(found) == ["models/tiny-hubert", "models/tiny-wavlm", "random:melhubert-small"]
    page.locator("#search textarea, #search input").first.fill("")
    wait_for_rows(page, lambda names, count: count == total)


def test_a_result_on_other_audio_is_marked_and_the_audio_is_counted(page, artifacts):
    page.locator("#search textarea, #search input").first.fill("other-audio")
    wait_for_rows(page, lambda names, count: names == [f"{OTHER_AUDIO} ⚠"])
    row = page.locator(ROWS.format(table="leaderboard")).first.inner_text()
    assert "⚠ differs: gender" in row
    assert "Audio: results on each test's reference audio: gender" in page.locator("#leaderboard-status").inner_text()
    shoot(page, artifacts, "03-other-audio")
    page.locator("#search textarea, #search input").first.fill("")


def test_bad_and_foreign_records_show_their_warning(page, artifacts):
    warning = page.locator("#load-warnings")
    assert warning.is_visible()
    text = warning.inner_text()
    assert "3 file(s) skipped" in text
    assert "foreign_results.json skipped: not a speat evaluation record" in text
    assert "broken.json skipped" in text and "from_the_future.json skipped" in text and "upgrade speat" in text
    shoot(page, artifacts, "03-warnings", "#load-warnings")


@pytest.mark.parametrize(("tab", "plot"), [("Training steps", "training-plot"), ("Pruning", "pruning-plot"),
                                           ("Distillation", "distillation-plot"), ("Layers", "layer-plot")])
def test_each_plot_renders(page, artifacts, tab, plot):
    open_tab(page, "Plots")
    open_tab(page, tab)
    image = page.locator(f"#{plot} img")
    image.wait_for(state="visible")
    page.wait_for_function("element => element.complete && element.naturalHeight > 0", arg=image.element_handle())
    width, height = image.evaluate("element => [element.naturalWidth, element.naturalHeight]")
    assert height / width > 0.25, "a curve figure, not the one-line 'nothing to show' figure"
    shoot(page, artifacts, f"04-plot-{plot}", f"#{plot}")


def _embeddings(folder: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    sets = {"X": rng.normal(0.3, 1, (9, 6)), "Y": rng.normal(-0.2, 1, (8, 6)), "A": rng.normal(1, 1, (6, 6)),
            "B": rng.normal(-1, 1, (7, 6))}
    lines = ["id,group," + ",".join(f"d{k}" for k in range(6))]
    lines += [f"{role}{index},{role}," + ",".join(repr(float(value)) for value in vector)
              for role, array in sets.items() for index, vector in enumerate(array)]
    (folder / "mine.csv").write_text("\n".join(lines) + "\n")
    np.savez(folder / "mine.npz", **sets)
    return sets


def _result_field(page, name: str) -> str | None:
    """One field of the evaluate module's result as the JSON view shows it (keys and values on their own lines)."""
    match = re.search(rf'"{name}"\s*:\s*([^\s,]+)', page.locator("#upload-result").inner_text())
    return match.group(1) if match else None


def upload_file(page, path: Path, attempts: int = 3) -> None:
    """Choose `path` in the upload box and wait until the box shows it. On a loaded machine, a file chosen while the
    tab is still being drawn can go unnoticed by the page: it is chosen again (a page that never takes it fails)."""
    page.locator("#upload-file").wait_for(state="visible")
    for attempt in range(attempts):
        page.locator("#upload-file input[type=file]").set_input_files(str(path))
        try:
            page.locator("#upload-file").get_by_text(path.name).first.wait_for(timeout=20_000)
            return
        except playwright.TimeoutError:
            if attempt == attempts - 1:
                raise


def test_the_embeddings_upload_returns_the_d_of_speat_test(page, artifacts, tmp_path):
    sets = _embeddings(tmp_path)
    open_tab(page, "Try it")
    page.locator("#upload-seed input").fill("5")
    # A different permutation budget per file tells the two results apart.
    for name, permutations in (("mine.csv", 2000), ("mine.npz", 2001)):
        expected = speat_test(sets["X"], sets["Y"], sets["A"], sets["B"], num_permutations=permutations, seed=5)
        page.locator("#upload-permutations input").fill(str(permutations))
        upload_file(page, tmp_path / name)
        page.locator("#upload-run").click()
        deadline = time.monotonic() + 60
        while _result_field(page, "num_permutations") != str(permutations) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert float(_result_field(page, "effect_size")) == pytest.approx(expected.effect_size, abs=1e-12), name
        assert float(_result_field(page, "p_value")) == pytest.approx(expected.p_value, abs=1e-12), name
        page.locator("#upload-summary").get_by_text(f"d = {expected.effect_size:+.4f}").first.wait_for()
        page.locator("#upload-plot img").wait_for(state="visible")
        shoot(page, artifacts, f"05-upload-{name.replace('.', '-')}")
        page.locator("#upload-file button[aria-label='Clear']").first.click()


def test_model_evaluation_is_off_with_a_clear_message(page):
    open_tab(page, "Try it")
    assert "turned off" in page.locator("#model-disabled").inner_text()
    assert page.locator("#model-run").is_disabled()


def test_a_row_click_opens_the_model_detail_and_its_explanation(page, artifacts):
    open_tab(page, "Leaderboard")
    page.locator(FIRST_CELLS.format(table="leaderboard"), has_text="random:melhubert-small").first.click()
    open_tab(page, "Model detail")
    detail = page.locator("#detail")
    detail.get_by_text("speat evaluate random:melhubert-small").first.wait_for()
    text = detail.inner_text()
    assert "--pooling per-layer" in text and "not a Hub model" in text and "numpy" in text
    shoot(page, artifacts, "06-detail")
    open_tab(page, "Explain a result")
    page.locator("#explain-summary").get_by_text("Targets that move d most").wait_for()
    page.locator("#explain-plot img").wait_for(state="visible")
    assert row_count(page, "explain-table") == 24
    shoot(page, artifacts, "07-explain")


def test_a_version_1_record_says_its_scores_are_not_available(page, artifacts):
    open_tab(page, "Leaderboard")
    page.locator("#search textarea, #search input").first.fill("version-1")
    wait_for_rows(page, lambda names, count: count == len(names) == 1)
    page.locator(FIRST_CELLS.format(table="leaderboard"), has_text="old/version-1-model").first.click()
    open_tab(page, "Explain a result")
    page.locator("#explain-summary").get_by_text("not available for this record").wait_for()
    shoot(page, artifacts, "08-explain-version-1", "#explain-summary")


def test_published_values_are_a_separate_clearly_marked_view(page, artifacts):
    open_tab(page, "Published values")
    banner = page.locator("#reference-banner").inner_text()
    assert "These are not our measurements" in banner and "59" in banner and "55" in banner
    assert "hubert_base_ls960" in page.locator("#reference-speat_published_mean_mean").inner_text()
    assert "MelHuBERT small" in page.locator("#reference-lin2024_table3").inner_text()
    shoot(page, artifacts, "09-published")
