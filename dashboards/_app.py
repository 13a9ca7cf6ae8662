"""The dashboard's web app: the JSON API under ``/api/`` (OpenAPI at ``/api/openapi.json``), the three pages
and their static files, plotly.js included (from the installed plotly package: no network needed).

Safety, in one place: only GET and HEAD are answered (anything else is 405, before any route runs); every
response carries a content security policy that allows no inline script, so user text (sweep names,
configs, errors) that a page wrongly inserted as HTML still could not run; the pages insert it as text
anyway. The Host header must name the address served (no DNS rebinding). An export download zips the
folder the store recorded, checked against its recorded hash; nothing from the request names a file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from zipfile import ZIP_DEFLATED, ZipFile

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dashboards import _views as views
from dashboards._importance import importance
from dashboards._live import OVERLAP, Live, NotFound, SweepTrials
from search.results import ResultsError
from search.storage import TrialRecord, TrialState

STATIC = Path(__file__).with_name("static")
PAGE_LIMIT = 500
POINTS_LIMIT = 10_000
MAX_CURVES = 20
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),  # plotly injects its styles and compiles its WebGL shaders (parallel coordinates) at run time
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class ReadOnly:
    """Answers every method but GET and HEAD with 405, and adds the security headers to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(_HEADERS)
            await send(message)

        if scope["method"] not in ("GET", "HEAD"):
            refused = JSONResponse(
                {"detail": f"the dashboard is read-only: {scope['method']} is not allowed (only GET, HEAD)"},
                status_code=405,
                headers={"Allow": "GET, HEAD"},
            )
            await refused(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


def _plotly_js() -> Path:
    spec = importlib.util.find_spec("plotly")  # located, not imported: plotly's Python side is not needed
    if spec is None or not spec.submodule_search_locations:
        raise ResultsError("the plotly package is not installed; the dashboard serves its plotly.min.js")
    return Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"


def create_app(store_url: str, *, allowed_hosts: Sequence[str] = LOCAL_HOSTS) -> FastAPI:
    """The dashboard over ``store_url``, opened read-only now. Raises ResultsError (a StoreError) if the
    store is missing, unreachable, not an hwnas store or at another schema revision. ``allowed_hosts``:
    the names the Host header may carry (``["*"]`` for any)."""
    live = Live(store_url)
    plotly_js = _plotly_js()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        live.close()

    app = FastAPI(
        lifespan=lifespan,
        title="hwnas dashboard API",
        version="1",
        description="Read-only: sweeps, trials, Pareto fronts and hypervolumes of an hwnas store.",
        openapi_url="/api/openapi.json",
        docs_url=None,  # the interactive docs load from a CDN; the schema is all a script needs
        redoc_url=None,
    )
    app.state.live = live
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.add_middleware(ReadOnly)

    @app.exception_handler(NotFound)
    def not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(views.BadQuery)
    def bad_query(_request: Request, exc: views.BadQuery) -> JSONResponse:
        # The shape of FastAPI's own 422 answers (the schema documents one shape per status code).
        error = {"loc": ["query", exc.parameter], "msg": str(exc), "type": "value_error"}
        return JSONResponse({"detail": [error]}, status_code=422)

    @app.exception_handler(ResultsError)
    def unreadable(_request: Request, exc: ResultsError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    _pages(app, plotly_js)
    _api(app, live)
    return app


def _pages(app: FastAPI, plotly_js: Path) -> None:
    # The pages are fixed files: what they show comes from the API and is inserted as text.
    @app.get("/", include_in_schema=False)
    def sweeps_page() -> FileResponse:
        return FileResponse(STATIC / "sweeps.html")

    @app.get("/sweeps/{sweep_id}", include_in_schema=False)
    def sweep_page(sweep_id: int) -> FileResponse:
        return FileResponse(STATIC / "sweep.html")

    @app.get("/sweeps/{sweep_id}/trials/{number}", include_in_schema=False)
    def trial_page(sweep_id: int, number: int) -> FileResponse:
        return FileResponse(STATIC / "trial.html")

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly() -> FileResponse:
        return FileResponse(plotly_js, media_type="text/javascript")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def _trial(live: SweepTrials, number: int) -> TrialRecord:
    trial = live.by_number.get(number)
    if trial is None:
        raise NotFound(f"sweep {live.sweep.name!r} has no trial {number}")
    return trial


def _api(app: FastAPI, live: Live) -> None:
    @app.get("/api/sweeps", tags=["sweeps"])
    def list_sweeps() -> list[views.SweepSummary]:
        """Every sweep with its trials by state, best values and hypervolume."""
        return [views.summary(s) for s in live.sweeps()]

    @app.get("/api/sweeps/{sweep_id}", tags=["sweeps"])
    def get_sweep(sweep_id: int) -> views.SweepDetail:
        """One sweep: the summary, its config, reference point and the parameters its trials use."""
        return views.detail(live.sweep(sweep_id))

    @app.get("/api/sweeps/{sweep_id}/points", tags=["trials"])
    def points(
        sweep_id: int,
        after: Annotated[int | None, Query(description="trial number the last page ended at")] = None,
        limit: Annotated[int, Query(ge=1, le=POINTS_LIMIT)] = 2000,
    ) -> views.PointPage:
        """Every trial in number order, a page at a time (what the plots draw)."""
        trials = [t for t in live.sweep(sweep_id).trials(sweep_id) if after is None or t.number > after]
        page = trials[:limit]
        return views.PointPage(
            points=[views.point(t) for t in page],
            next_after=page[-1].number if len(trials) > limit else None,
        )

    @app.get("/api/sweeps/{sweep_id}/changes", tags=["trials"])
    def changes(
        sweep_id: int,
        since: Annotated[datetime | None, Query(description="the `cursor` of the last answer")] = None,
    ) -> views.Changes:
        """Trials changed after ``since`` (no ``since``: none, just the cursor): what open pages poll."""
        sweep = live.sweep(sweep_id)
        changed: list[TrialRecord] = []
        if since is not None:
            aware = since if since.tzinfo is not None else since.replace(tzinfo=UTC)  # naive: UTC
            bound = max(aware, datetime.min.replace(tzinfo=UTC) + OVERLAP) - OVERLAP
            changed = [
                t for t in sweep.by_number.values() if t.updated_at is not None and t.updated_at > bound
            ]
            changed.sort(key=lambda t: t.number)
        return views.Changes(
            points=[views.point(t) for t in changed], cursor=sweep.cursor, counts=views.counts(sweep)
        )

    @app.get("/api/sweeps/{sweep_id}/trials", tags=["trials"])
    def trials(
        sweep_id: int,
        state: Annotated[list[TrialState] | None, Query(description="keep only these states")] = None,
        param: Annotated[str | None, Query(description="keep only trials whose parameter ...")] = None,
        value: Annotated[str | None, Query(description="... has this value")] = None,
        sort: Annotated[
            str, Query(description="number, state, fidelity, duration, finished, results.NAME or params.NAME")
        ] = "number",
        order: Annotated[str, Query(pattern="^(asc|desc)$")] = "asc",
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT)] = 50,
    ) -> views.TableRows:
        """The trials table: filtered, sorted, one page."""
        return views.table(
            live.sweep(sweep_id),
            states=list(state or []),
            param=param,
            value=value,
            sort=sort,
            descending=order == "desc",
            offset=offset,
            limit=limit,
        )

    @app.get("/api/sweeps/{sweep_id}/front", tags=["fronts"])
    def front(sweep_id: int) -> views.Front:
        """The Pareto front over all objectives, its hypervolume, the references and the confirmed front."""
        return views.front(live.sweep(sweep_id))

    @app.get("/api/sweeps/{sweep_id}/hypervolume", tags=["fronts"])
    def hypervolume(sweep_id: int) -> views.HypervolumeHistory:
        """Hypervolume after each completed trial, with when it finished."""
        sweep = live.sweep(sweep_id)
        return sweep.derived("history", lambda: views.history(sweep))

    @app.get("/api/sweeps/{sweep_id}/curves", tags=["trials"])
    def curves(
        sweep_id: int,
        trial: Annotated[list[int], Query(max_length=MAX_CURVES, description="trial numbers")],
    ) -> list[views.Curve]:
        """Per-epoch metrics of the given trials (learning curves)."""
        sweep = live.sweep(sweep_id)
        chosen = [_trial(sweep, number) for number in dict.fromkeys(trial)]
        rows = live.read(lambda results: results.metrics([t.id for t in chosen]))
        return [
            views.Curve(number=t.number, epochs=[views.finite_map(r) for r in rows.get(t.id, [])])
            for t in chosen
        ]

    @app.get("/api/sweeps/{sweep_id}/importance", tags=["fronts"])
    def parameter_importance(sweep_id: int) -> views.Importance:
        """How much each parameter matters to each objective (recomputed at most every 30 s)."""
        sweep = live.sweep(sweep_id)
        names = [o["name"] for o in sweep.sweep.objectives]
        completed = [t for t in sweep.trials(sweep_id, [TrialState.COMPLETED]) if t.replicate_of is None]
        found = sweep.derived("importance", lambda: importance(completed, names), max_age_s=30.0)
        return views.Importance(**found)

    @app.get("/api/sweeps/{sweep_id}/trials/{number}", tags=["trials"])
    def get_trial(sweep_id: int, number: int) -> views.TrialDetail:
        """One trial: config, results, per-epoch metrics, cost report, replicates, error, export."""
        sweep = live.sweep(sweep_id)
        trial = _trial(sweep, number)
        metrics, costs, artifacts = live.read(
            lambda r: (r.metrics([trial.id]), r.costs([trial.id]), r.artifacts([trial.id]))
        )
        return views.trial_detail(
            sweep, trial, metrics.get(trial.id, []), costs.get(trial.id), artifacts.get(trial.id, [])
        )

    @app.get(
        "/api/sweeps/{sweep_id}/trials/{number}/export.zip",
        tags=["trials"],
        response_class=StreamingResponse,
        responses={200: {"content": {"application/zip": {}}}},
    )
    def download_export(sweep_id: int, number: int) -> StreamingResponse:
        """The trial's newest export folder (as recorded by ``hwnas export``, with its manifest's hash), zipped."""
        sweep = live.sweep(sweep_id)
        trial = _trial(sweep, number)
        recorded = [
            a for a in live.read(lambda r: r.artifacts([trial.id])).get(trial.id, []) if a["kind"] == "export"
        ]
        if not recorded:
            raise NotFound(
                f"trial {number} has no export yet (hwnas export {sweep.sweep.name} --trial {number})"
            )
        folder = Path(recorded[-1]["path"])
        manifest = folder / "MANIFEST.sha256"
        if not folder.is_dir() or not manifest.is_file():
            raise NotFound(
                f"the export folder of trial {number} ({folder.name}) is not on this host any more"
            )
        if hashlib.sha256(manifest.read_bytes()).hexdigest() != recorded[-1]["sha256"]:
            raise NotFound(
                f"the export folder of trial {number} ({folder.name}) changed since it was recorded"
            )
        name = re.sub(r"[^A-Za-z0-9._-]", "_", folder.name) or "export"
        return StreamingResponse(
            _zipped(folder),
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{name}.zip"'},
        )


def _zipped(folder: Path, chunk: int = 2**16) -> Iterator[bytes]:
    """The regular files under ``folder`` (symbolic links are not followed), zipped into a temporary file
    and handed out in chunks."""
    with tempfile.SpooledTemporaryFile(max_size=32 * 2**20) as archive:
        with ZipFile(archive, "w", ZIP_DEFLATED) as zipped:
            for root, dirs, files in os.walk(folder, followlinks=False):
                dirs.sort()
                for file in sorted(files):
                    path = Path(root) / file
                    if path.is_file() and not path.is_symlink():
                        zipped.write(path, Path(folder.name) / path.relative_to(folder))
        archive.seek(0)
        while data := archive.read(chunk):
            yield data
