"""The Space with 10,000 records: time from launch to the first full render, time per filter action, and memory.

Records are the bundled example records, copied with varied names, sizes and d until there are 10,000 files (about
3,300 leaderboard rows of 3 tests each). The Space runs in this process (its server in a thread); headless Debian
Chromium drives it. Printed, not asserted (target: under 2 s per filter action).

    .venv/bin/python benchmarks/space_load.py [--records 10000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import resource
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from speat_metric.space.sources import DirectorySource, bundled_records_dir, read_record_files  # noqa: E402

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FAMILIES = ("wav2vec2", "hubert", "wavlm", "melhubert", "data2vec-audio", "whisper")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_records(folder: Path, count: int) -> None:
    """`count` record files derived from the bundled records (mean-over-layers ones, three tests per model)."""
    records, _ = read_record_files(bundled_records_dir())
    base = [record for record in records if record.pooling.get("layer") is None and record.checkpoint is None
            and record.model.kind == "transformers"]
    by_test = {test: [record for record in base if record.test == test] for test in ("gender", "age", "native")}
    written = index = 0
    while written < count:
        family = FAMILIES[index % len(FAMILIES)]
        for test, choices in by_test.items():
            if written >= count:
                break
            record = choices[index % len(choices)]
            model = record.model.to_dict()
            name = f"org{index % 97}/{family}-variant-{index}"
            # weights of its own: the leaderboard shows exact duplicates (same weights, same d) as one row
            model.update(name=name, num_parameters=1_000_000 * (index % 900), weights_sha256=hashlib.sha256(
                name.encode()).hexdigest(), settings={**model["settings"], "model_type": family})
            delta = ((index * 7919) % 200 - 100) / 100
            speat = record.speat.replace(effect_size=record.speat.effect_size + delta,
                                         ci_low=record.speat.ci_low + delta, ci_high=record.speat.ci_high + delta)
            record.replace(model=type(record.model).from_dict(model), speat=speat).save(folder)
            written += 1
        index += 1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        write_records(folder, args.records)
        before = rss_mb()
        import gradio  # noqa: F401  (imported before the clock starts: it is the same for any number of records)

        from speat_metric.space.app import launch

        port = free_port()
        start = time.perf_counter()
        demo = launch(DirectorySource(folder), host="127.0.0.1", port=port, block=False)
        served = time.perf_counter() - start
        loaded = rss_mb()
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(f"http://127.0.0.1:{port}/")
            # Full render: the page's load event has filled every view (the source line is its last output to change
            # from empty, and the leaderboard holds rows).
            page.wait_for_function("document.querySelector('#data-source')?.innerText?.includes('results') && "
                                   "document.querySelectorAll('#leaderboard tr[data-run]').length > 0")
            first_render = time.perf_counter() - start
            # Every row shown is in the page (speat's own table). The status line above it says how many rows match:
            # a filter action is done when it changes.
            rows = page.evaluate("document.querySelectorAll('#leaderboard tr[data-run]').length")
            status = "document.querySelector('#leaderboard-status').innerText"

            # Done: the status names a row count ("21 rows." or "... of 3,334 rows, ..."), differs from before,
            # and no progress timer ("0.5s") shows.
            settled = f"(text => /rows[.,]/.test(text) && !/\\d\\.\\ds/.test(text) && text !== before)({status})"

            def timed(action) -> float:
                before = page.evaluate(status)
                begin = time.perf_counter()
                action()
                page.wait_for_function(f"(before => {settled})({json.dumps(before)})")
                return time.perf_counter() - begin

            actions = []
            for family in ("hubert", "wavlm"):
                box = page.locator("#filter-family").get_by_label(family, exact=True)
                actions.append((f"family {family} on", timed(box.check)))
                actions.append((f"family {family} off", timed(box.uncheck)))
            search = page.locator("#search textarea, #search input").first
            actions.append(("search 'org7/'", timed(lambda: search.fill("org7/"))))
            actions.append(("search cleared", timed(lambda: search.fill(""))))
            limit = page.locator("#row-limit input").first

            def show_all() -> None:
                limit.click()
                page.get_by_role("option", name="all", exact=True).click()

            actions.append(("show all rows", timed(show_all)))
            all_rows = int(re.search(r"([\d,]+) rows, ranked", page.evaluate(status)).group(1).replace(",", ""))
            actions.append(("family hubert, all rows", timed(page.locator("#filter-family").get_by_label(
                "hubert", exact=True).check)))
            browser.close()
        demo.close()
    print(f"records: {args.records}: {all_rows} leaderboard rows ({rows} shown by default, the first ranked)")
    print(f"launch (read records, build tables and app, start server): {served:.2f} s")
    print(f"launch to first full render in Chromium: {first_render:.2f} s")
    for name, seconds in actions:
        print(f"filter action {name:<20} {seconds:.2f} s")
    print(f"filter action median: {statistics.median(seconds for _, seconds in actions[:6]):.2f} s with the default "
          f"rows (target < 2 s)")
    print(f"memory: RSS {before:.0f} MB before launch, {loaded:.0f} MB after loading, "
          f"peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
