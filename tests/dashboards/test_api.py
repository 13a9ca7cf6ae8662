"""The dashboard's JSON API in-process (the ASGI app over the real store): it agrees with the results layer,
refuses every write, pages its lists, gives clear messages for bad input and unreadable stores, serves
only recorded export folders, and a schema-based fuzz run finds no server error."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from dashboard_store import DemoStore, fill_demo
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from dashboards import create_app
from search.results import Results, ResultsError
from search.storage import Store, TrialState

HOSTS = ["testserver", "127.0.0.1"]


@pytest.fixture(scope="module")
def client(demo_store: DemoStore) -> Iterator[TestClient]:
    with TestClient(create_app(demo_store.url, allowed_hosts=HOSTS)) as test_client:
        yield test_client


def _ids(url: str) -> dict[str, int]:
    with Results.open(url) as results:
        return {o.sweep.name: o.sweep.id for o in results.sweeps()}


def test_the_api_agrees_with_the_results_layer(client: TestClient, demo_store: DemoStore) -> None:
    sweeps = client.get("/api/sweeps").json()
    with Results.open(demo_store.url) as results:
        overviews = {o.sweep.id: o for o in results.sweeps()}
        for listed in sweeps:
            overview = overviews[listed["id"]]
            assert listed["name"] == overview.sweep.name and listed["total"] == overview.total
            assert listed["counts"] == {s.value: n for s, n in overview.counts.items()}
            front, volume = results.front(overview.sweep)
            answered = client.get(f"/api/sweeps/{listed['id']}/front").json()
            assert answered["trials"] == [t.number for t in front]
            assert listed["hypervolume"] == pytest.approx(volume)
            for objective in overview.sweep.objectives:
                values = [t.results[objective["name"]] for t in front]
                assert listed["best"][objective["name"]] == (min(values) if values else None)
        demo = results.sweep("demo")
        history = client.get(f"/api/sweeps/{demo.id}/hypervolume").json()["points"]
        assert [p["hypervolume"] for p in history] == pytest.approx(
            [h["hypervolume"] for h in results.hypervolume_history(demo)]
        )
        trial = next(t for t in results.trials(demo.id) if t.number == 3)
        metrics, cost = results.metrics([trial.id])[trial.id], results.costs([trial.id])[trial.id]
    response = client.get(f"/api/sweeps/{demo.id}/trials/3")
    assert str(demo_store.export_folder.parent) not in response.text  # the export's path stays on the server
    detail = response.json()
    assert detail["params"] == trial.params and detail["results"] == trial.results
    assert detail["metrics"] == metrics and detail["cost"] == cost
    assert [r["replicate_of"] for r in detail["replicates"]] == [3, 3]
    assert detail["export"]["folder"] == "trial-00003"


def test_lists_are_paged_and_the_table_sorts_and_filters(client: TestClient, demo_store: DemoStore) -> None:
    sweep_id = _ids(demo_store.url)["demo"]
    with Results.open(demo_store.url) as results:
        numbers = [t.number for t in results.trials(sweep_id)]
    pages, after = [], None
    while True:
        query = {"limit": 7} | ({} if after is None else {"after": after})
        page = client.get(f"/api/sweeps/{sweep_id}/points", params=query).json()
        pages.append([p["number"] for p in page["points"]])
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert [n for page in pages for n in page] == numbers and max(len(p) for p in pages) == 7

    rows = client.get(
        f"/api/sweeps/{sweep_id}/trials", params={"sort": "results.bops", "order": "desc"}
    ).json()
    bops = [r["results"].get("bops") for r in rows["rows"]]
    scored = [b for b in bops if b is not None]
    assert scored == sorted(scored, reverse=True) and bops[len(scored) :] == [None] * (
        len(bops) - len(scored)
    )
    failed = client.get(f"/api/sweeps/{sweep_id}/trials", params={"state": ["FAILED", "PRUNED"]}).json()
    assert sorted(r["state"] for r in failed["rows"]) == ["FAILED", "FAILED", "PRUNED", "PRUNED"]
    quantized = client.get(
        f"/api/sweeps/{sweep_id}/trials", params={"param": "quantize", "value": "true"}
    ).json()
    assert quantized["total"] > 0 and all(r["params"]["quantize"] is True for r in quantized["rows"])
    second = client.get(f"/api/sweeps/{sweep_id}/trials", params={"offset": 10, "limit": 10}).json()
    assert [r["number"] for r in second["rows"]] == numbers[10:20] and second["total"] == len(numbers)


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/api/sweeps/999", 404, "no sweep with id 999"),
        ("/api/sweeps/{demo}/trials/999", 404, "sweep 'demo' has no trial 999"),
        (
            "/api/sweeps/{demo}/trials?sort=colour",
            422,
            "sort='colour' is not allowed; allowed: number, state",
        ),
        ("/api/sweeps/{demo}/trials?param=colour&value=red", 422, "param='colour' is not a parameter"),
        ("/api/sweeps/{demo}/trials?param=latent", 422, "with both `param` and `value`"),
        ("/api/sweeps/{demo}/trials?limit=501", 422, "less than or equal to 500"),
        (
            "/api/sweeps/{demo}/trials/4/export.zip",
            404,
            "trial 4 has no export yet (hwnas export demo --trial 4)",
        ),
    ],
)
def test_bad_requests_get_a_clear_message(
    client: TestClient, demo_store: DemoStore, path: str, status: int, message: str
) -> None:
    response = client.get(path.format(demo=_ids(demo_store.url)["demo"]))
    assert response.status_code == status
    assert message in str(response.json()["detail"])
    if status == 422:  # ours and FastAPI's alike: the one shape the schema documents for 422
        assert all({"loc", "msg", "type"} <= set(error) for error in response.json()["detail"])


def test_every_route_refuses_writes_and_foreign_hosts(client: TestClient) -> None:
    paths = ["/", "/sweeps/1", "/static/sweep.js", "/api/openapi.json", "/nowhere"]
    paths += [
        path.replace("{sweep_id}", "1").replace("{number}", "3") for path in client.app.openapi()["paths"]
    ]  # type: ignore[attr-defined]
    for path in paths:
        for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
            response = client.request(method, path)
            assert response.status_code == 405 and response.headers["allow"] == "GET, HEAD", (method, path)
    assert client.get("/api/sweeps", headers={"host": "attacker.example"}).status_code == 400
    page = client.get("/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"


def test_plotly_is_served_from_the_installed_package(client: TestClient) -> None:
    import plotly

    bundled = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    response = client.get("/static/plotly.min.js")
    assert response.status_code == 200 and response.content == bundled.read_bytes()


def test_the_export_download_serves_only_the_recorded_unchanged_folder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hwnas.db'}"
    store = Store(url)
    folder = fill_demo(store, tmp_path / "exports")
    store.close()
    (tmp_path / "secret.txt").write_text("not part of any export")
    (folder / "link").symlink_to(tmp_path / "secret.txt")
    with TestClient(create_app(url, allowed_hosts=HOSTS)) as client:
        response = client.get("/api/sweeps/1/trials/3/export.zip")
        assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
        assert 'filename="trial-00003.zip"' in response.headers["content-disposition"]
        names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
        assert sorted(names) == [
            "trial-00003/MANIFEST.sha256",
            "trial-00003/hls4ml_prj/firmware/myproject.cpp",
        ]
        (folder / "MANIFEST.sha256").write_text('{"trial": "edited"}\n')
        changed = client.get("/api/sweeps/1/trials/3/export.zip")
        assert changed.status_code == 404 and "changed since it was recorded" in changed.json()["detail"]
        shutil.rmtree(folder)
        gone = client.get("/api/sweeps/1/trials/3/export.zip")
        assert gone.status_code == 404 and "is not on this host any more" in gone.json()["detail"]
        assert client.get("/api/sweeps/1/trials/3/export.zip/../../../secret.txt").status_code == 404


def test_a_store_that_becomes_unreadable_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "hwnas.db"
    store = Store(f"sqlite:///{path}")
    fill_demo(store, tmp_path / "exports")
    store.close()
    with TestClient(create_app(f"sqlite:///{path}", allowed_hosts=HOSTS)) as client:
        assert client.get("/api/sweeps").status_code == 200
        path.write_bytes(b"this is no database" * 512)
        response = client.get("/api/sweeps")
    assert response.status_code == 503
    assert response.json()["detail"].startswith(f"cannot read the store sqlite:///{path}")


def test_the_dashboard_loads_no_torch(demo_store: DemoStore) -> None:
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from dashboards import create_app\n"
        "client = TestClient(create_app(sys.argv[1], allowed_hosts=['testserver']))\n"
        "for sweep in client.get('/api/sweeps').json():\n"
        "    for part in ('', '/front', '/hypervolume', '/trials', '/points', '/importance', '/trials/0'):\n"
        "        assert client.get(f\"/api/sweeps/{sweep['id']}{part}\").status_code == 200, part\n"
        "print(sorted(m for m in ('torch', 'optuna', 'ray', 'alembic') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, demo_store.url], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_api_fuzzed_from_its_schema_gives_no_server_error(client: TestClient) -> None:
    """Every operation of the OpenAPI schema, 15 generated requests each: no 5xx, and every documented
    answer matches its schema."""
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def call(case: Any) -> None:
            case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

        call()


def test_the_store_is_never_written(demo_store: DemoStore, client: TestClient) -> None:
    path = Path(demo_store.url.removeprefix("sqlite:///"))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for sweep in client.get("/api/sweeps").json():
        client.get(f"/api/sweeps/{sweep['id']}/changes", params={"since": "2000-01-01T00:00:00"})
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    with Results.open(demo_store.url) as results:
        assert results.count(_ids(demo_store.url)["demo"])[TrialState.QUEUED] == 1


def test_an_unreadable_store_is_refused_when_the_app_is_made(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no store at"):
        create_app(f"sqlite:///{tmp_path / 'missing.db'}")
