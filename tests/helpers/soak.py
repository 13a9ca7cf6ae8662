"""Kill the driver of a small sweep at random moments and resume it; count what was lost or trained twice.

Used by ``tests/reliability/test_soak.py`` (10 kills) and ``benchmarks/soak.py`` (50 kills). Each round
starts ``hwnas sweep launch`` (which continues an identical existing sweep) as a subprocess, waits until it
runs a trial and SIGKILLs it after a further random delay (mid-trial, between trials or while it records); a last round runs the sweep to its end. Workers die with their driver (PDEATHSIG).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sweep_configs import tiny_sweep

HWNAS = [sys.executable, "-m", "search.cli"]


@dataclass
class SoakResult:
    kills: int  # drivers killed mid-sweep
    resumes: int  # drivers started on the existing sweep (every launch after the first)
    trials: int  # the sweep's budget
    completed: int
    lost: int  # trials left QUEUED or RUNNING at the end
    duplicated: int  # search trials whose config another search trial already had
    counted: int  # trials counting against the budget (completed, pruned, failed)
    wall_s: float


def soak_config(store: str, *, trials: int, seed: int, workers: int = 2, **overrides: Any) -> dict[str, Any]:
    return tiny_sweep(
        store,
        name="soak",
        trials=trials,
        epochs=1,
        seed=seed,
        executor={"workers": workers},
        heartbeat_s=0.5,
        max_retries=1000,  # a trial may be killed many times: it must never fail for that
        **overrides,
    )


def soak(
    workdir: Path,
    store: str,
    *,
    kills: int,
    trials: int,
    seed: int = 0,
    delay_s: tuple[float, float] = (0.0, 5.0),
    final_timeout_s: float = 900.0,
    kill_for_s: float | None = None,
) -> SoakResult:
    """Run the soak; raises RuntimeError if a driver fails (exits non-zero) instead of being killed.

    ``kill_for_s`` stops killing after that much wall time (the kills done are reported), then the last
    round runs the sweep to its end.
    """
    path = workdir / "soak.yaml"
    path.write_text(yaml.safe_dump(soak_config(store, trials=trials, seed=seed)))
    rng = random.Random(seed)
    started = time.monotonic()
    launches = killed = 0
    log = (workdir / "soak-driver.log").open("ab")
    # A driver that stalls is made to print every thread's stack (SIGABRT) into the log before it is killed.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
    try:
        while killed < kills and (kill_for_s is None or time.monotonic() - started < kill_for_s):
            launches += 1
            proc = subprocess.Popen([*HWNAS, "sweep", "launch", str(path)], stdout=log, stderr=log, env=env)
            try:
                running = _runs_a_trial(store, proc)
            except RuntimeError as stalled:
                proc.send_signal(signal.SIGABRT)  # its stacks go to the log
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                log.flush()
                tail = (workdir / "soak-driver.log").read_text(errors="replace")[-20_000:]
                raise RuntimeError(f"{stalled}; the driver's log ends:\n{tail}") from None
            if running:  # then kill it at a random moment of its run
                try:
                    proc.wait(timeout=rng.uniform(*delay_s))
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    killed += 1
                    continue
            proc.wait()
            if proc.returncode != 0:
                raise RuntimeError(f"driver exited with {proc.returncode}; see {workdir / 'soak-driver.log'}")
            break  # the sweep finished before the next kill
        else:
            launches += 1
            last = subprocess.Popen([*HWNAS, "sweep", "launch", str(path)], stdout=log, stderr=log, env=env)
            try:
                last.wait(timeout=final_timeout_s)
            except subprocess.TimeoutExpired:
                last.send_signal(signal.SIGABRT)  # its stacks go to the log
                last.wait()
                raise RuntimeError(
                    f"the last driver did not finish in {final_timeout_s:g} s; see {workdir / 'soak-driver.log'}"
                ) from None
            if last.returncode != 0:
                raise RuntimeError(
                    f"last driver exited with {last.returncode}; see {workdir / 'soak-driver.log'}"
                )
    finally:
        log.close()
    wall = time.monotonic() - started
    return count(store, "soak", trials=trials, kills=killed, resumes=launches - 1, wall_s=wall)


def _runs_a_trial(store_url: str, proc: subprocess.Popen[bytes], timeout_s: float = 600.0) -> bool:
    """True once the driver ``proc``, just launched, has started a trial (one started since this call:
    its worker process renames the trial at once, so the name is no sign), False if it exits first (the
    sweep is done). Reads the store, creates nothing."""
    import sqlalchemy

    query = sqlalchemy.text("SELECT count(*) FROM trials WHERE started_at >= :since")
    since = datetime.now(UTC)
    deadline = time.monotonic() + timeout_s
    database = store_url.removeprefix("sqlite:///") if store_url.startswith("sqlite:///") else None
    if database is not None:
        since = since.replace(tzinfo=None)  # SQLite holds the store's UTC times as naive text
    engine = None
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            if database is None or Path(database).exists():
                engine = engine or sqlalchemy.create_engine(store_url)
                try:
                    with engine.connect() as connection:
                        if connection.scalar(query, {"since": since}):
                            return True
                except sqlalchemy.exc.SQLAlchemyError:
                    pass  # the driver is creating the store
            time.sleep(0.2)
    finally:
        if engine is not None:
            engine.dispose()
    raise RuntimeError(f"the driver started no trial in {timeout_s:g} s")


def count(
    store_url: str, name: str, *, trials: int, kills: int = 0, resumes: int = 0, wall_s: float = 0.0
) -> SoakResult:
    """What the store says about sweep ``name`` at the end."""
    from search.storage import Store, TrialState

    store = Store(store_url)
    try:
        sweep = store.get_sweep(name)
        assert sweep is not None, f"no sweep {name!r} in {store_url}"
        rows = store.trials(sweep.id)
    finally:
        store.close()
    search = [t for t in rows if t.replicate_of is None]
    trainable = [t for t in search if t.state is not TrialState.INFEASIBLE]
    counted = (TrialState.COMPLETED, TrialState.PRUNED, TrialState.FAILED)
    return SoakResult(
        kills=kills,
        resumes=resumes,
        trials=trials,
        completed=sum(t.state is TrialState.COMPLETED for t in search),
        lost=sum(not t.state.finished for t in rows),
        duplicated=len(trainable) - len({t.config_hash for t in trainable}),
        counted=sum(t.state in counted for t in search),
        wall_s=wall_s,
    )
