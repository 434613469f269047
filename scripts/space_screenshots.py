"""Screenshots of every tab of the Space at 1400 px and 400 px wide, for a reviewer who wants to look without
setting anything up.

    python scripts/space_screenshots.py OUT_DIR [--results DIR] [--chromium /usr/bin/chromium]

It starts ``speat space`` (the bundled example records, or ``--results``) on a free local port, drives headless
Chromium (Debian's ``chromium`` and the ``playwright`` package, as the browser tests do) and writes
``OUT_DIR/<width>px-<tab>.png``. Nothing is committed: OUT_DIR is yours.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

TABS = ("Leaderboard", "Published values", "Plots", "Model detail", "Explain a result", "Try it", "About")
WIDTHS = (1400, 400)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_space(results: Path | None, port: int, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "speat_metric.space", "--port", str(port)]
    if results is not None:
        command += ["--results", str(results)]
    environment = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environment)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the Space exited with {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/gradio_api/info", timeout=2):
                return process
        except OSError:
            time.sleep(0.3)
    process.terminate()
    raise SystemExit(f"the Space did not answer within 180 s; see {log}")


def open_tab(page, name: str) -> None:
    """Click a tab; on a narrow page the tabs that do not fit are in the "⋯" overflow menu."""
    tab = page.get_by_role("tab", name=name, exact=True)
    if not tab.is_visible():
        page.locator(".overflow-menu button").first.click()
        tab = page.locator(".overflow-dropdown button", has_text=name).first
    tab.click()


def shoot(url: str, out: Path, chromium: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    written = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(chromium), args=CHROMIUM_FLAGS)
        for width in WIDTHS:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(url)
            page.wait_for_selector("#leaderboard table.board, #leaderboard .board-empty", timeout=60_000)
            for tab in TABS:
                open_tab(page, tab)
                page.wait_for_timeout(1500)  # plots and tables draw after the tab opens
                path = out / f"{width}px-{tab.lower().replace(' ', '-')}.png"
                page.screenshot(path=path, full_page=True)
                written.append(path)
            page.close()
        browser.close()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the screenshots (created)")
    parser.add_argument("--results", type=Path, default=None, help="records to show (default: the bundled ones)")
    parser.add_argument("--chromium", type=Path, default=Path("/usr/bin/chromium"), help="the Chromium to drive")
    args = parser.parse_args()
    if not args.chromium.exists():
        parser.error(f"--chromium {args.chromium} does not exist; install Debian's chromium or give its path")
    if args.results is not None and not args.results.is_dir():
        parser.error(f"--results {args.results} is not a directory of records")
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="speat-screenshots-")) / "space.log"
    process = start_space(args.results, port, log)
    try:
        for path in shoot(f"http://127.0.0.1:{port}/", args.out, args.chromium):
            print(path)
    finally:
        process.terminate()
        process.wait(timeout=20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
