"""The dashboard's pages in a real headless Chromium against a real `hwnas dashboard` process and store.

The page fixture fails a test on any JavaScript error or opened dialog (an alert() run from stored text).
The live test adds a trial to the store, so it runs last in this module.
"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashboard_store import XSS_NAME, DemoStore

from search.results import Results
from search.storage import Store, TrialState

pytestmark = pytest.mark.browser

LOADED = "body[data-loaded='1']"


def _sweep(url: str, name: str) -> Any:
    with Results.open(url) as results:
        return results.sweep(name)


def _open(page: Any, address: str) -> None:
    page.goto(address)
    page.wait_for_selector(LOADED)


def _rows(page: Any) -> list[int]:
    return page.eval_on_selector_all("#trials tbody tr", "rows => rows.map(r => Number(r.dataset.number))")


def _front_trace(page: Any) -> list[int]:
    return page.evaluate(
        "() => document.getElementById('pareto').data.find(t => t.name === 'Pareto front').customdata"
    )


def test_the_sweeps_list_shows_every_sweep_with_its_trials_by_state(
    page: Any, server: str, demo_store: DemoStore
) -> None:
    _open(page, server + "/")
    with Results.open(demo_store.url) as results:
        overviews = results.sweeps()
    assert {o.sweep.name for o in overviews} == {"real", "demo", XSS_NAME}
    for overview in overviews:
        row = page.locator(f"#sweeps tbody tr[data-sweep='{overview.sweep.id}']")
        assert row.locator(".sweep-name").inner_text() == overview.sweep.name
        assert int(row.locator(".total").inner_text()) == overview.total
        for state in TrialState:
            assert int(row.locator(f".count-{state.value}").inner_text()) == overview.counts.get(state, 0)
    real = next(o for o in overviews if o.sweep.name == "real")
    assert real.counts[TrialState.COMPLETED] >= 3  # the tiny sweep really ran: its trials completed


@pytest.mark.parametrize("name", ["real", "demo"])
def test_the_pareto_plot_shows_the_stores_front(
    page: Any, server: str, demo_store: DemoStore, name: str
) -> None:
    sweep = _sweep(demo_store.url, name)
    _open(page, f"{server}/sweeps/{sweep.id}")
    with Results.open(demo_store.url) as results:
        front, volume = results.front(sweep)
        confirmed, _ = results.confirmed_front(sweep)
    plotted = page.evaluate(
        "() => { const t = document.getElementById('pareto').data.find(t => t.name === 'Pareto front');"
        " return t.customdata.map((n, i) => [n, t.x[i], t.y[i]]); }"
    )
    assert sorted(plotted) == sorted([t.number, t.results["bops"], t.results["emd_mean"]] for t in front)
    assert len(front) >= 2 if name == "demo" else len(front) >= 1
    assert page.locator("#hypervolume").inner_text() != "—" and volume is not None
    references = page.evaluate(
        "() => (document.getElementById('pareto').data.find(t => t.name === 'reference model') || {}).customdata"
    )
    assert references == [t.number for t in results_references(demo_store.url, sweep)]
    if name == "demo":  # trial 3 was re-evaluated twice: its mean is drawn with error bars
        bars = page.evaluate(
            "() => { const t = document.getElementById('pareto').data.find(t => t.name.startsWith('confirmed'));"
            " return [t.customdata, t.error_x.array, t.error_y.array]; }"
        )
        assert bars[0] == [p.trial.number for p in confirmed]
        assert bars[1] == [pytest.approx(p.std["bops"]) for p in confirmed] and bars[1][0] > 0
        # choosing other axes redraws the same front on them
        page.select_option("#x", "emd_mean")
        page.select_option("#y", "bops")
        swapped = page.evaluate(
            "() => { const t = document.getElementById('pareto').data.find(t => t.name === 'Pareto front');"
            " return t.customdata.map((n, i) => [n, t.x[i]]); }"
        )
        assert sorted(swapped) == sorted([t.number, t.results["emd_mean"]] for t in front)


def results_references(url: str, sweep: Any) -> list[Any]:
    with Results.open(url) as results:
        return results.report(sweep).references


def test_sorting_and_filtering_the_trials_table(page: Any, server: str, demo_store: DemoStore) -> None:
    sweep = _sweep(demo_store.url, "demo")
    with Results.open(demo_store.url) as results:
        trials = results.trials(sweep.id)
    _open(page, f"{server}/sweeps/{sweep.id}")
    assert _rows(page) == [t.number for t in trials][:25]

    page.click("th[data-sort='results.emd_mean']")
    page.wait_for_selector("#trials[data-loaded^='results.emd_mean/asc']")
    scored = sorted(
        (t for t in trials if "emd_mean" in t.results), key=lambda t: (t.results["emd_mean"], t.number)
    )
    unscored = [t.number for t in trials if "emd_mean" not in t.results]
    assert _rows(page) == ([t.number for t in scored] + unscored)[:25]
    page.click("th[data-sort='results.emd_mean']")
    page.wait_for_selector("#trials[data-loaded^='results.emd_mean/desc']")
    assert _rows(page) == ([t.number for t in reversed(scored)] + unscored)[:25]

    page.select_option("#state-filter", "FAILED")
    page.wait_for_selector("#trials[data-loaded*='/FAILED/']")
    failed = [t for t in trials if t.state is TrialState.FAILED]
    assert sorted(_rows(page)) == [t.number for t in failed] and len(failed) == 2
    assert page.locator("#page-info").inner_text() == "trials 1–2 of 2"

    page.click("#clear-filter")
    page.select_option("#param-filter", "latent")
    page.fill("#value-filter", "12")
    page.click("#apply-filter")
    page.wait_for_selector("#trials[data-loaded*='latent=12']")
    latent = [t for t in trials if t.params.get("latent") == 12]
    assert sorted(_rows(page)) == sorted(t.number for t in latent)[:25] and len(latent) > 3


def test_selected_trials_overlay_their_curves_and_compare_side_by_side(
    page: Any, server: str, demo_store: DemoStore
) -> None:
    sweep = _sweep(demo_store.url, "demo")
    _open(page, f"{server}/sweeps/{sweep.id}")
    for number in (1, 2, 3):
        page.check(f"#trials tbody tr[data-number='{number}'] input[type=checkbox]")
    page.click("#show-curves")
    page.wait_for_function("() => (document.getElementById('curves').data || []).length === 3")
    names = page.evaluate("() => document.getElementById('curves').data.map(t => t.name)")
    assert names == ["#1", "#2", "#3"]
    page.click("#show-compare")
    page.wait_for_selector("#compare-table")
    header = page.eval_on_selector_all("#compare-table thead th", "cells => cells.map(c => c.innerText)")
    assert header == ["", "#1", "#2", "#3"]
    assert page.locator("#compare-table tr.diff th", has_text="conv0_filters").count() == 1  # 8, 16, 4
    assert page.locator("#compare-table tr.diff th", has_text="conv0_kernel").count() == 0  # all 3


def test_the_trial_page_shows_config_curves_costs_replicates_and_downloads_the_export(
    page: Any, server: str, demo_store: DemoStore, tmp_path: Path
) -> None:
    sweep = _sweep(demo_store.url, "demo")
    _open(page, f"{server}/sweeps/{sweep.id}/trials/3")
    config = page.eval_on_selector_all("#config tr", "rows => rows.map(r => r.innerText)")
    assert "latent\t12" in config
    assert sorted(page.evaluate("() => document.getElementById('curves').data.map(t => t.name)")) == [
        "train_loss",
        "val_loss",
    ]
    assert page.locator("#layers tbody tr").count() == 2
    assert page.locator("#replicates tbody tr").count() == 2
    with page.expect_download() as download:
        page.click("#download")
    archive = tmp_path / "export.zip"
    download.value.save_as(archive)
    with zipfile.ZipFile(archive) as zipped:
        assert sorted(zipped.namelist()) == [
            "trial-00003/MANIFEST.sha256",
            "trial-00003/hls4ml_prj/firmware/myproject.cpp",
        ]
        assert (
            zipped.read("trial-00003/MANIFEST.sha256")
            == (demo_store.export_folder / "MANIFEST.sha256").read_bytes()
        )

    _open(page, f"{server}/sweeps/{sweep.id}/trials/5")
    assert page.locator("#trial-error").inner_text() == "diverged <b>at epoch 3</b> in trial 5"
    assert page.locator("#export").inner_text().startswith("not exported yet")


def test_html_in_names_configs_and_errors_is_shown_as_text(
    page: Any, server: str, demo_store: DemoStore
) -> None:
    sweep = _sweep(demo_store.url, XSS_NAME)
    _open(page, server + "/")
    assert page.locator(f"#sweeps tbody tr[data-sweep='{sweep.id}'] .sweep-name").inner_text() == XSS_NAME
    _open(page, f"{server}/sweeps/{sweep.id}")
    assert page.locator("#title span").first.inner_text() == XSS_NAME
    assert XSS_NAME in page.locator("#config").inner_text()
    assert "<img src=x onerror=alert(1)>" in page.evaluate(
        "() => document.getElementById('pareto').data.map(t => t.hovertext.join(' ')).join(' ')"
    ).replace("&lt;", "<").replace("&gt;", ">")
    box = page.locator("#pareto .point").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    label = page.wait_for_selector("#pareto .hovertext")
    assert "<img src=x onerror=alert(" in label.text_content()  # shown as text, run as nothing
    _open(page, f"{server}/sweeps/{sweep.id}/trials/0")
    assert page.locator("#trial-error").inner_text() == "<script>alert('error')</script>"
    assert "<i>w</i>" in page.locator("#facts").inner_text()
    assert page.evaluate("() => document.querySelectorAll('img, i, b').length") == 0
    assert page.evaluate("() => document.scripts.length") == 2  # plotly and the page's module


def test_an_unknown_sweep_shows_a_clear_message(page: Any, server: str) -> None:
    page.goto(f"{server}/sweeps/999")
    page.wait_for_selector("#error:not([hidden])")
    assert page.locator("#error").inner_text() == "no sweep with id 999"


def test_writes_are_refused_by_the_running_server(server: str, demo_store: DemoStore) -> None:
    store_file = Path(demo_store.url.removeprefix("sqlite:///"))
    before = store_file.stat().st_mtime_ns
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for path in ("/", "/api/sweeps", "/api/sweeps/1", "/api/sweeps/1/trials/3/export.zip", "/nowhere"):
            response = httpx.request(method, server + path, json={"name": "x"})
            assert response.status_code == 405, (method, path)
            assert response.headers["allow"] == "GET, HEAD"
    assert store_file.stat().st_mtime_ns == before


def test_a_trial_added_to_the_store_appears_on_the_open_page_within_5_s(
    page: Any, server: str, demo_store: DemoStore
) -> None:
    sweep = _sweep(demo_store.url, "demo")
    _open(page, f"{server}/sweeps/{sweep.id}")
    page.wait_for_selector("body[data-polled]", state="attached")
    total = int(page.locator("#total").inner_text())
    store = Store(demo_store.url)
    trial = store.create_trial(sweep.id, {"n_conv": 0, "latent": 4}, config_hash="live")
    store.start_trial(trial.id, worker="w", host="h")
    store.finish_trial(trial.id, TrialState.COMPLETED, results={"emd_mean": 0.05, "bops": 5.0e3})
    store.close()
    written = time.monotonic()
    page.wait_for_function(
        f"() => (document.getElementById('pareto').dataset.front || '').split(',').includes('{trial.number}')",
        timeout=5_000,
    )
    assert time.monotonic() - written < 5.0
    assert int(page.locator("#total").inner_text()) == total + 1
    with Results.open(demo_store.url) as results:
        assert trial.number in [t.number for t in results.front(sweep)[0]]
    assert trial.number in _front_trace(page)
