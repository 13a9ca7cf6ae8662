"""One store for the dashboard tests, built once: a real (tiny) sweep run by the sweep loop, a hand-made
sweep with every kind of trial the pages show, and a sweep whose name is HTML; one `hwnas dashboard`
process per test module, and headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from dashboard_store import DemoStore, fill_demo, fill_xss
from sweep_configs import tiny_sweep

from search.storage import Store

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> DemoStore:
    """The store every dashboard test reads: built once per session, then only read (and, by the live
    tests, added to)."""
    from search._config import parse_config
    from search.execution._loop import run_sweep

    root = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{root / 'hwnas.db'}"
    run_sweep(parse_config(tiny_sweep(url, name="real", warm_start=["econt_baseline"])))
    store = Store(url)
    folder = fill_demo(store, root / "exports")
    fill_xss(store)
    store.close()
    return DemoStore(url, folder)


@pytest.fixture(scope="module")
def server(demo_store: DemoStore) -> Iterator[str]:
    """A real `hwnas dashboard` process on a free port; yields its base URL (no trailing slash)."""
    env = {**os.environ, "COLUMNS": "300"}
    process = subprocess.Popen(
        [sys.executable, "-m", "search.cli", "dashboard", "--store", demo_store.url, "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line)
        found = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        if found:
            break
    else:
        process.wait(timeout=10)
        raise AssertionError(f"the dashboard did not start: {''.join(lines)}")
    try:
        yield found.group(1)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise


def chromium_path() -> str:
    """Debian's chromium, which `make setup` installs (scripts/browser.sh): a missing one fails the
    browser tests rather than skipping them."""
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is not installed: run `make setup` (it installs Debian's chromium)")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page; a JavaScript error or a dialog (an alert() from injected text) fails the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(90_000)  # parsing plotly.js on 2 busy shared cores can take tens of seconds
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("dialog", lambda dialog: (problems.append(f"dialog opened: {dialog.message}"), dialog.dismiss()))
    yield page
    context.close()
    assert problems == []
