"""Screenshots of the dashboard's pages for the README (docs/dashboard-*.png), from a real store.

Run: .venv/bin/python scripts/dashboard_screenshots.py --store sqlite:///hwnas.db --sweep econt-quick

Starts `hwnas dashboard` on a free port, opens the sweeps list, the sweep (with three trials selected for
their learning curves and the side-by-side comparison) and its first front trial in Debian's chromium.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

DOCS = Path(__file__).resolve().parents[1] / "docs"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--sweep", required=True)
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium is not installed: run `make setup`")
    process = subprocess.Popen(
        [sys.executable, "-m", "search.cli", "dashboard", "--store", args.store, "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
    )
    try:
        assert process.stderr is not None
        base = next(m.group(1) for line in process.stderr if (m := re.search(r"at (http://\S+:\d+)/", line)))
        sweep = next(s for s in httpx.get(f"{base}/api/sweeps").json() if s["name"] == args.sweep)
        front = httpx.get(f"{base}/api/sweeps/{sweep['id']}/front").json()["trials"]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(180_000)  # a loaded machine takes a while to parse plotly.js
            page.goto(base + "/")
            page.wait_for_selector("body[data-loaded='1']")
            page.screenshot(path=DOCS / "dashboard-sweeps.png")
            page.goto(f"{base}/sweeps/{sweep['id']}")
            page.wait_for_selector("body[data-loaded='1']")
            page.wait_for_function("() => document.getElementById('importance-note').textContent !== ''")
            for number in front[:3]:
                row = page.locator(f"#trials tbody tr[data-number='{number}'] input[type=checkbox]")
                if row.count():
                    row.check()
            page.click("#show-curves")
            page.click("#show-compare")
            page.wait_for_timeout(1500)
            page.screenshot(path=DOCS / "dashboard-sweep.png", full_page=True)
            page.goto(f"{base}/sweeps/{sweep['id']}/trials/{front[0]}")
            page.wait_for_selector("body[data-loaded='1']")
            page.screenshot(path=DOCS / "dashboard-trial.png", full_page=True)
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
