"""The Space as a visitor uses it: the app started with ``python app.py`` in a copy of ``spaces_app/`` (settings from
the environment, speat installed) on 127.0.0.1, driven in headless Debian Chromium. test_spaces_build.py builds the
published Space itself, from its repository, in a fresh environment.

Screenshots go to the test's temporary folder, and also to ``$SPEAT_TEST_ARTIFACTS`` when that is set.
"""

from __future__ import annotations

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
import pandas as pd
import pytest
from test_space_fixtures import SMALL, bundled, of, with_model, write_results_dir
from tiny_models import save_tiny_model

from speat_metric.formatting import format_d
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
    folder = write_results_dir(tmp_path_factory.mktemp("results") / "results", extra=[other])
    per_layer_run(tmp_path_factory.mktemp("whisper"), folder / "whisper")
    return folder


WHISPER = "whisper-tiny"


def per_layer_run(root: Path, out: Path) -> None:
    """A real ``speat evaluate --pooling per-layer`` run of a (tiny, random) Whisper encoder on the demo set: the
    records a user gets for a model evaluated per layer only."""
    model = save_tiny_model("whisper", root / WHISPER)
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "SPEAT_CACHE": str(root / "cache"), "HF_HOME": str(root)}
    run = subprocess.run([str(Path(sys.executable).with_name("speat")), "evaluate", f"./{WHISPER}", "--pooling",
                          "per-layer", "--permutations", "2000", "--out", str(out), "--no-progress"], cwd=root,
                         env=environment, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and model.exists(), run.stderr


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
        page.wait_for_selector(BOARD_ROWS)
        yield page
        browser.close()


def shoot(page, artifacts: Path, name: str, selector: str | None = None) -> None:
    path = artifacts / f"{name}.png"
    if selector:
        page.locator(selector).screenshot(path=path)
    else:
        page.screenshot(path=path, full_page=True)


# The leaderboard is speat's own table (every row in the page); Gradio's dataframes (the explain table) draw only
# the rows in view (a virtual table): their counts come from the grid's aria-rowcount.
BOARD_ROWS = "#leaderboard tr[data-run]"
MODEL_NAMES = "#leaderboard td.model > :first-child"


def row_count(page, table: str = "leaderboard") -> int:
    if table == "leaderboard":
        return page.locator(BOARD_ROWS).count()
    return int(page.locator(f"#{table} [role=grid]").get_attribute("aria-rowcount")) - 1


def first_column(page) -> list[str]:
    """The model names of the leaderboard's rows, top to bottom."""
    return [cell.strip() for cell in page.locator(MODEL_NAMES).all_inner_texts()]


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


def aliases(page) -> set[str]:
    """The model names the leaderboard's rows say they stand for (exact duplicates folded into them)."""
    names = set()
    for text in page.locator("#leaderboard .aliases").all_inner_texts():
        names |= {alias.split(" (")[0] for alias in text.removeprefix("also: ").split("; ")}
    return names


def test_leaderboard_renders_the_bundled_results(page, artifacts, results):
    records, _ = read_record_files(results)
    pooled = {record.model_label for record in records if record.pooling.get("layer") is None}
    per_layer_only = {record.model_label for record in records} - pooled
    assert len(per_layer_only) == 1 and WHISPER in per_layer_only.pop()
    names = wait_for_rows(page, lambda names, count: count == len(pooled) + 1 - len(aliases(page)))
    assert set(names) | aliases(page) == pooled | {name for name in names if WHISPER in name}
    assert {"stft", "mfcc", "random:melhubert-small"} <= set(names)
    assert page.locator("#synthetic-note").is_visible()
    headers = {page.locator(f"#leaderboard th[data-sort='{name}']").count() for name in
               ("gender d", "age d", "native d", "gender p", "gender size", "params", "mean |d|")}
    assert headers == {1}
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
    wait_for_rows(page, lambda names, count: names == [OTHER_AUDIO])
    warning = page.locator(f"{BOARD_ROWS} .audio-warning").first
    assert warning.inner_text() == "⚠" and "other audio" in warning.get_attribute("title")
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
    """Choose `path` in the upload box and wait until the box shows it. On a loaded machine a click on the previous
    file's Clear, or a file chosen while the tab is still being drawn, can go unnoticed by the page: the previous
    file is cleared and the file chosen again (a page that never takes it fails)."""
    box = page.locator("#upload-file")
    box.wait_for(state="visible")
    for attempt in range(attempts):
        clear = box.locator("button[aria-label='Clear']")
        if clear.count():  # the previous file is still shown, so the box has no file input
            clear.first.click()
        try:
            box.locator("input[type=file]").wait_for(state="attached", timeout=20_000)
            box.locator("input[type=file]").set_input_files(str(path))
            box.get_by_text(path.name).first.wait_for(timeout=20_000)
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
        page.locator("#upload-summary").get_by_text(f"SpEAT of {name}").first.wait_for()
        assert format_d(expected.effect_size) in page.locator("#upload-summary").inner_text()
        alt = page.locator("#upload-plot img").get_attribute("alt")
        assert "X" in alt and "Y" in alt and "undefined" not in alt
        page.locator("#upload-plot img").wait_for(state="visible")
        shoot(page, artifacts, f"05-upload-{name.replace('.', '-')}")
        page.locator("#upload-file button[aria-label='Clear']").first.click()


def test_model_evaluation_is_off_with_a_clear_message(page):
    open_tab(page, "Try it")
    assert "turned off" in page.locator("#model-disabled").inner_text()
    assert page.locator("#model-run").is_disabled()


def test_a_row_click_opens_the_model_detail_and_its_explanation(page, artifacts):
    open_tab(page, "Leaderboard")
    page.locator("#leaderboard td.model", has_text="random:melhubert-small").first.click()
    page.get_by_role("tab", name="Model detail", selected=True).wait_for()  # the row click opens the model
    detail = page.locator("#detail")
    detail.get_by_text("random:melhubert-small").first.wait_for()
    page.locator("#detail-plot img").wait_for(state="visible")
    for summary in detail.locator("details > summary").all():  # how each result was made: collapsed at first
        summary.click()
    detail.get_by_text("speat evaluate random:melhubert-small").first.wait_for()
    text = detail.inner_text()
    assert "--pooling per-layer" in text and "not a Hub model" in text and "numpy" in text
    shoot(page, artifacts, "06-detail")
    open_tab(page, "Explain a result")
    page.locator("#explain-summary").get_by_text("Targets that move d most").wait_for()
    page.locator("#explain-plot img").wait_for(state="visible")
    assert row_count(page, "explain-table") == 24
    shoot(page, artifacts, "07-explain")


def test_the_rank_and_tier_columns_show_intervals_among_comparable_results(page, artifacts):
    open_tab(page, "Leaderboard")
    page.locator("#search textarea, #search input").first.fill("")
    chosen = ("gender rank (95% interval)", "gender tier")
    accordion = page.locator(".label-wrap", has_text="Columns").first  # the help text also says Columns
    accordion.click()
    for name in chosen:
        page.locator("#columns").get_by_label(name, exact=True).check()
    try:
        for name in chosen:
            page.locator(f"#leaderboard th[data-sort='{name}']").wait_for(state="visible")
        assert "tier" in page.locator("#leaderboard th[data-sort='gender tier']").get_attribute("title")
        ranks, tiers = cells(page, chosen[0]), cells(page, chosen[1])
        assert ranks and all(re.fullmatch(r"\d+ \(\d+-\d+\)|—|", cell) for cell in ranks), ranks
        assert all(re.fullmatch(r"\d+|—|", cell) for cell in tiers), tiers
        assert any(re.fullmatch(r"\d+ \((\d+)-(?!\1\))\d+\)", cell) for cell in ranks), "a real interval"
        version_1 = page.locator(BOARD_ROWS, has_text="old/version-1-model")
        assert version_1.locator("td[data-label='gender rank (95% interval)']").inner_text().strip() == "—"
        shoot(page, artifacts, "13-rank-columns")
    finally:
        for name in chosen:
            page.locator("#columns").get_by_label(name, exact=True).uncheck()
        accordion.click()
        page.locator("#leaderboard th[data-sort='gender tier']").wait_for(state="detached")


def test_a_version_1_record_says_its_scores_are_not_available(page, artifacts):
    open_tab(page, "Leaderboard")
    page.locator("#search textarea, #search input").first.fill("version-1")
    wait_for_rows(page, lambda names, count: count == len(names) == 1)
    page.locator("#leaderboard td.model", has_text="old/version-1-model").first.click()
    open_tab(page, "Explain a result")
    page.locator("#explain-summary").get_by_text("not available for this record").wait_for()
    shoot(page, artifacts, "08-explain-version-1", "#explain-summary")


def test_published_values_are_a_separate_clearly_marked_view(page, artifacts):
    open_tab(page, "Published values")
    banner = page.locator("#reference-banner").inner_text()
    assert "These are not our measurements" in banner and "59" in banner and "55" in banner
    published = page.locator("#reference-speat_published_all_tests_mean_mean").inner_text()
    assert "hubert_base_ls960" in published and "race-coraal-buckeye" in published
    assert "MelHuBERT small" in page.locator("#reference-lin2024_table3").inner_text()
    shoot(page, artifacts, "09-published")


# The scenario of issue 22: the bundled records, a per-layer run of a real model and corrupt files, read as a new
# user reads them. It changes the page's controls, so it runs last.

D_CELL = re.compile(r"^([+-]\d\.\d\d|n/a)?$")
P_CELL = re.compile(r"^(<?\d(\.\d+)?(e-\d+)?|n/a)?$")
SIZE_CELL = re.compile(r"^((negligible|small|medium|large)( ◆)?)?$")
PARAMS_CELL = re.compile(r"^(—|\d{1,3}|\d(\.\d\d)?[KMB]|\d\d(\.\d)?[KMB]|\d{3}[KMB])$")


def cells(page, label: str) -> list[str]:
    return [text.strip() for text in page.locator(f"{BOARD_ROWS} td[data-label='{label}']").all_inner_texts()]


def wait_for_status(page, text: str) -> str:
    page.locator("#leaderboard-status").get_by_text(text).first.wait_for()
    return page.locator("#leaderboard-status").inner_text()


def test_a_per_layer_run_shows_in_the_default_view_and_names_its_layers(page, artifacts):
    open_tab(page, "Leaderboard")
    page.locator("#search textarea, #search input").first.fill("")
    row = page.locator(BOARD_ROWS, has_text=WHISPER)
    row.first.wait_for()
    assert row.count() == 1 and "mean of d over its layers" in row.inner_text()
    assert "mean-of-layer-d" in row.locator(".badge").all_inner_texts()
    assert "per-layer" in row.locator(".badge", has_text="mean-of-layer-d").get_attribute("title")
    page.locator("#layer-view input").click()
    page.get_by_role("option", name="every layer view").click()
    wait_for_rows(page, lambda names, count: sum(WHISPER in name for name in names) > 1)
    looks = page.locator("#leaderboard td.model").all_inner_texts()
    assert len(looks) == len(set(looks)), "two rows look the same"
    layers = [text for text in looks if WHISPER in text]
    assert all(re.search(r"layer \d", text) for text in layers)
    shoot(page, artifacts, "10-every-layer")
    page.locator("#layer-view input").click()
    page.get_by_role("option", name="mean over layers").click()
    wait_for_rows(page, lambda names, count: sum(WHISPER in name for name in names) == 1)


def test_every_number_is_written_one_way(page):
    for test in ("gender", "age", "native"):
        assert all(D_CELL.match(cell) for cell in cells(page, f"{test} d")), cells(page, f"{test} d")
        assert all(P_CELL.match(cell) for cell in cells(page, f"{test} p")), cells(page, f"{test} p")
        assert all(SIZE_CELL.match(cell) for cell in cells(page, f"{test} size"))
    assert all(PARAMS_CELL.match(cell) for cell in cells(page, "params")), cells(page, "params")
    looks = page.locator("#leaderboard td.model").all_inner_texts()
    assert len(looks) == len(set(looks)), "two rows look the same"


def _magnitudes(page, label: str) -> list[float]:
    return [abs(float(cell)) for cell in cells(page, label) if cell not in ("", "n/a")]


def test_a_header_click_ranks_by_that_column_and_a_second_click_reverses_it(page, artifacts):
    header = page.locator("#leaderboard th[data-sort='gender d']")
    header.click()
    page.locator("#leaderboard th[data-sort='gender d'][aria-sort='ascending']").wait_for()
    wait_for_status(page, "ranked by gender |d|, least biased first")
    assert _magnitudes(page, "gender d") == sorted(_magnitudes(page, "gender d"))
    page.locator("#leaderboard th[data-sort='gender d']").click()
    page.locator("#leaderboard th[data-sort='gender d'][aria-sort='descending']").wait_for()
    assert _magnitudes(page, "gender d") == sorted(_magnitudes(page, "gender d"), reverse=True)
    assert page.locator("#sort-by input").input_value() == "gender |d|, most biased first"
    shoot(page, artifacts, "11-sorted")


def test_typing_a_word_in_rows_is_said_and_the_table_stays(page):
    rows_before = row_count(page)
    field = page.locator("#row-limit input")
    field.fill("abc")
    field.press("Enter")
    text = wait_for_status(page, "'abc' is not a number of rows")
    assert "showing the first 200" in text and row_count(page) == rows_before
    field.fill("3")
    field.press("Enter")
    wait_for_rows(page, lambda names, count: count == 3)
    field.fill("all")
    field.press("Enter")
    wait_for_rows(page, lambda names, count: count == rows_before)


def test_filters_survive_a_refresh(page):
    page.locator("#filter-family").get_by_label("wav2vec2", exact=True).check()
    wait_for_rows(page, lambda names, count: set(cells(page, "family")) == {"wav2vec2"})
    narrowed = row_count(page)
    page.locator("#refresh").click()
    page.wait_for_timeout(1500)
    wait_for_rows(page, lambda names, count: count == narrowed and set(cells(page, "family")) == {"wav2vec2"})
    assert page.locator("#filter-family").get_by_label("wav2vec2", exact=True).is_checked()
    assert page.locator("#sort-by input").input_value() == "gender |d|, most biased first"


def test_the_csv_download_is_the_rows_shown(page, tmp_path):
    shown = first_column(page)
    with page.expect_download() as download:
        page.locator("#download-csv").click()
    path = tmp_path / "board.csv"
    download.value.save_as(path)
    frame = pd.read_csv(path)
    assert list(frame["model"]) == shown
    assert [format_d(value) for value in frame["gender d"]] == cells(page, "gender d")
    assert {"gender ci low", "gender ci high", "stimuli"} <= set(frame.columns) and set(frame["stimuli"]) == {
        "synthetic"}
    page.locator("#filter-family").get_by_label("wav2vec2", exact=True).uncheck()


def test_an_empty_kind_of_stimuli_stays_chosen_and_says_why(page):
    page.locator("#stimuli").get_by_text("real stimuli").click()
    page.locator("#leaderboard .board-empty").get_by_text("No results on the study's real stimuli").wait_for()
    assert page.locator("#stimuli input[value='real']").is_checked()
    page.locator("#stimuli").get_by_text("synthetic stimuli").click()
    page.locator(BOARD_ROWS).first.wait_for()


@pytest.mark.parametrize(("tab", "plot"), [("Training steps", "training-plot"), ("Pruning", "pruning-plot"),
                                           ("Layers", "layer-plot")])
def test_each_plot_says_what_it_shows_and_gives_its_numbers(page, tab, plot):
    open_tab(page, "Plots")
    open_tab(page, tab)
    alt = page.locator(f"#{plot} img").get_attribute("alt")
    assert "undefined" not in alt and "SpEAT d" in alt and "synthetic" in alt.lower()
    page.locator(f"#{plot}").locator("xpath=following::button[contains(., 'The plotted numbers')][1]").click()
    numbers = page.locator(f"#{plot}-numbers")
    numbers.wait_for(state="visible")
    assert "95% CI" in numbers.inner_text() and page.locator(f"#{plot}-csv").is_visible()


def test_on_a_phone_the_leaderboard_is_a_stack_of_one_test_at_a_time(page, artifacts):
    open_tab(page, "Leaderboard")
    page.set_viewport_size({"width": 400, "height": 900})
    try:
        page.locator("#leaderboard .board-switch").wait_for(state="visible")
        assert not page.locator("#leaderboard thead").is_visible()
        first = page.locator(BOARD_ROWS).first
        focused = page.locator("#leaderboard .board-switch button[aria-pressed='true']").inner_text()
        assert first.locator(f"td[data-label='{focused} p']").is_visible()
        other = "native" if focused != "native" else "age"
        assert not first.locator(f"td[data-label='{other} p']").is_visible()
        page.locator("#leaderboard .board-switch button", has_text=other).click()
        assert first.locator(f"td[data-label='{other} p']").is_visible()
        assert not first.locator(f"td[data-label='{focused} p']").is_visible()  # one test at a time
        key = page.locator("#sort-by input").input_value().split(" |d|")[0]  # the ranking key always shows
        assert first.locator(f"td[data-label='{key} d'], td[data-label='{key}']").first.is_visible()
        box = first.bounding_box()
        assert box["width"] <= 400
        shoot(page, artifacts, "12-phone")
    finally:
        page.set_viewport_size({"width": 1400, "height": 1000})


def test_at_1280_px_the_ranking_key_and_its_columns_fit(page):
    page.set_viewport_size({"width": 1280, "height": 900})
    try:
        page.wait_for_timeout(300)
        fit = page.locator("#leaderboard .board-scroll").evaluate(
            "element => [element.scrollWidth, element.clientWidth]")
        assert fit[0] <= fit[1], f"the table is {fit[0]} px wide in a {fit[1]} px box"
        for name in ("model", "mean |d|", "gender d", "native p", "params"):
            assert page.locator(f"#leaderboard th[data-sort='{name}']").is_visible()
    finally:
        page.set_viewport_size({"width": 1400, "height": 1000})


CONTRAST = """
root => {
  const parse = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const background = (element) => {
    for (let node = element; node; node = node.parentElement) {
      const [r, g, b, a] = parse(getComputedStyle(node).backgroundColor);
      if (a === undefined || a > 0.5) { return [r, g, b]; }
    }
    return [255, 255, 255];
  };
  const seen = [];
  root.querySelectorAll('*').forEach(
    (element) => {
      if (!element.offsetParent || !element.textContent.trim()) { return; }
      seen.push([element.className || element.tagName, parse(getComputedStyle(element).color).slice(0, 3),
                 background(element)]);
    });
  return seen;
}
"""


def _luminance(rgb: list[float]) -> float:
    channels = [value / 255 for value in rgb]
    linear = [value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4 for value in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


@pytest.mark.parametrize("tab", ["Leaderboard", "Model detail", "Try it"])
def test_every_text_on_the_page_meets_wcag_aa_contrast(page, tab):
    """WCAG 2 AA: a contrast ratio of at least 4.5:1 for every visible text (the table, its badges and legend, the
    theme's labels and buttons, the detail's code, the footer)."""
    open_tab(page, tab)
    page.wait_for_timeout(500)
    texts = page.locator("body").evaluate(CONTRAST)
    assert len(texts) > 50
    for name, colour, background in texts:
        if len(colour) < 3:
            continue
        light, dark = sorted((_luminance(colour), _luminance(background)), reverse=True)
        assert (light + 0.05) / (dark + 0.05) >= 4.5, f"{tab}: {name}: {colour} on {background}"


def test_a_chosen_plot_stays_chosen_after_a_refresh(page):
    open_tab(page, "Plots")
    open_tab(page, "Layers")
    menu = page.locator("#layered-model input")
    menu.click()
    options = page.get_by_role("option").all_inner_texts()
    chosen = next(option for option in options if WHISPER in option)
    page.get_by_role("option", name=chosen).click()
    page.locator("#layer-plot img[alt*='whisper']").wait_for()
    page.locator("#refresh").click()
    page.wait_for_timeout(1500)
    page.locator("#layer-plot img[alt*='whisper']").wait_for()
    assert menu.input_value() == chosen
