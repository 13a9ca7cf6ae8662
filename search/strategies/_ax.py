"""The ``ax`` strategy: Ax (ax-platform 1.x ``Client``) multi-objective Bayesian optimisation.

The space goes to Ax as its tree of dependent parameters (``space.to_ax()``, layer counts as switch chains);
Ax starts with ``n_sobol`` quasi-random trials (the space's centre first), then fits a GP per objective and
proposes by expected hypervolume improvement. ``thresholds`` (``{metric: value}``, normally the sweep's
reference point) become Ax's objective thresholds: "metric <= value" for minimised objectives, ">=" for
maximised ones. If none of the first ``n_sobol`` results meets every threshold, the thresholds are dropped
with a warning (Ax then infers its own from the data): thresholds nothing meets leave Ax no hypervolume to
improve, so every later proposal would be blind.

How every outcome reaches Ax (one policy, here):

=============================  ==================================================================
Outcome                        Ax trial
=============================  ==================================================================
Completed, finite values       ``complete_trial`` with the objective values: ``(mean, sem)`` for an
                               objective whose noise replicates measured (the driver then gives a
                               standard error with every trial, see ``Completed.sem``), else a plain
                               float and Ax infers the noise. One format per objective: mixing floats
                               and (mean, sem) in one metric broke Ax's model fitting.
Completed, an infinite value   ``ABANDONED``: a GP cannot fit ±inf, and a diverged config should
                               not be proposed again.
Pruned                         ``ABANDONED``: partial-fidelity values would enter the model as if
                               final (Ax's early-stopped state expects them), so none are passed.
Failed                         ``FAILED`` with the reason: Ax may propose the config again (the
                               failure may be transient, e.g. a crashed worker).
Rejected                       ``ABANDONED``: infeasible or over a hardware budget, never trained.
                               Ax never re-proposes an abandoned arm and keeps it as a pending point,
                               which lowers the acquisition value around it.
=============================  ==================================================================

Resume: ``observe`` attaches the trial (``attach_trial(space.to_ax_parameters(config))``) and reports its
outcome exactly as ``tell`` would, so a rebuilt Client holds the same trials, states and data.

Throughput: with ``background=True`` (default) proposals are generated in a background thread, ``batch_size``
per Ax call, so that one is ready when a worker frees up: a new call starts whenever fewer than
``batch_size`` proposals are ready; ``tell`` only queues the outcome (the thread gives it to Ax before its
next call) and never waits for Ax. ``ask`` blocks only while no proposal is ready. The price: a proposal
may have been made before the last few results arrived, and proposals depend on the timing of results, so
a background sweep is not reproducible bit for bit. ``background=False`` proposes in ``ask`` itself and is
deterministic for a seed.

When trials are shorter than Ax's proposal time (seconds per Bayesian call here), workers would still wait.
``fill_random=True`` trades proposal quality for no waiting: once the ``n_sobol`` quasi-random trials have
been proposed, a worker that finds no Ax proposal ready gets a random draw of the space at once (keys
``random-<n>``); its outcome reaches Ax as an attached trial, exactly like a trial observed on resume, so
the model learns from it. Ax does not see it as pending while it runs.
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from search._types import Completed, Failed, Outcome, Proposal, Pruned, Rejected
from search.strategies._base import Strategy, StrategyError, _Option, register_strategy
from spaces import SpaceError

if TYPE_CHECKING:
    from ax.api.client import Client

log = logging.getLogger(__name__)

_FILL_STREAM = 1  # random fills draw from their own seed stream
_FILL_ATTEMPTS = 100  # draws per wanted fill before giving up (a small space nearly all known): wait for Ax


@dataclass(frozen=True)
class _Report:
    """An outcome waiting to be given to the Client: for a proposed trial (``index``) or an observed one
    (``parameters`` to attach)."""

    outcome: Outcome
    raw_data: dict[str, float | tuple[float, float]] | None
    index: int | None = None
    parameters: dict[str, Any] | None = None


@register_strategy
class AxStrategy(Strategy):
    """Ax ``Client`` over the space's Ax encoding; see the module docstring for the outcome policy."""

    name = "ax"
    options_allowed: ClassVar[Mapping[str, _Option]] = {
        "n_sobol": _Option(8, int, minimum=1),
        "batch_size": _Option(2, int, minimum=1),
        "thresholds": _Option(None, dict, optional=True),
        "background": _Option(True, bool),
        "fill_random": _Option(False, bool),
    }

    def _setup(self) -> None:
        if self.options["thresholds"] is None and self.reference_point is not None:
            self.options["thresholds"] = self.reference_point  # Ax's thresholds = the sweep's reference point
        if self.options["fill_random"] and not self.options["background"]:
            raise StrategyError(
                "option 'fill_random' of strategy 'ax' needs background=True: without the background thread "
                "every proposal is made in ask, so there is never a wait to fill"
            )
        constraints = self._threshold_constraints()
        try:
            parameters = self.space.to_ax()
        except SpaceError as exc:
            raise StrategyError(f"strategy 'ax' cannot express this space: {exc}") from exc
        from ax.api.client import Client  # Ax takes seconds to import: only when this strategy is used
        from ax.utils.common.logger import set_stderr_log_level

        # Ax prints every trial at INFO on its own stderr handler; the driver reports progress itself.
        set_stderr_log_level(logging.WARNING)
        objective = ", ".join(("-" if o.direction == "minimize" else "") + o.name for o in self.objectives)
        self._client = Client(random_seed=self.seed)
        self._objective = objective
        try:
            self._client.configure_experiment(parameters=parameters, name=self.space.name)
            self._client.configure_optimization(objective=objective, outcome_constraints=constraints)
            self._client.configure_generation_strategy(
                method="fast",
                initialization_budget=self.options["n_sobol"],
                initialization_random_seed=self.seed,
                # Never wait for initial results: a free worker must always get a proposal.
                allow_exceeding_initialization_budget=True,
            )
        except Exception as exc:  # Ax raises several types (ValueError, UserInputError, ...) for bad input
            raise StrategyError(f"Ax rejected the experiment (objective {objective!r}): {exc}") from exc
        self._client_lock = threading.Lock()  # the Client is not thread-safe: every use holds this lock
        self._state = threading.Condition()  # guards everything below
        self._ready: deque[Proposal] = deque()
        self._reports: list[_Report] = []
        self._random_fills: dict[str, dict[str, Any]] = {}  # key -> config of a running random draw
        self._random_count = 0  # draws made, including those skipped as known
        self._fills_given = 0
        self._observed = 0  # trials replayed from the store: a resumed sweep's draws continue after them
        self._known_configs: set[str] = set()  # hashes of replayed configs and random draws
        self._failure: Exception | None = None
        self._exhausted = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._ax_calls = 0
        self._ax_seconds = 0.0
        self._ax_longest_call = 0.0
        self._generated = 0
        self._ask_wait_seconds = 0.0
        self._results: list[
            dict[str, float]
        ] = []  # objective values given to Ax, until thresholds are checked
        self._thresholds_checked = not constraints
        self._thresholds_dropped = False

    def _threshold_constraints(self) -> list[str]:
        thresholds = self.options["thresholds"]
        if thresholds is None:
            return []
        names = [objective.name for objective in self.objectives]
        if len(names) < 2:
            raise StrategyError(
                f"option 'thresholds' of strategy 'ax' needs two or more objectives (Ax takes thresholds "
                f"only in multi-objective optimisation), the objectives are {names}"
            )
        unknown = sorted(set(thresholds) - set(names))
        if unknown:
            raise StrategyError(
                f"option 'thresholds' of strategy 'ax' names unknown objective(s) {unknown}; "
                f"the objectives are {names}"
            )
        constraints = []
        for objective in self.objectives:
            if objective.name not in thresholds:
                continue
            value = thresholds[objective.name]
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise StrategyError(f"threshold of {objective.name!r} must be a finite number, got {value!r}")
            operator = "<=" if objective.direction == "minimize" else ">="
            constraints.append(f"{objective.name} {operator} {float(value)!r}")
        return constraints

    # -- ask ------------------------------------------------------------------------------------------
    def _ask(self, n: int) -> list[Proposal]:
        if not self.options["background"]:
            with self._state:
                self._raise_failure()
            started = time.perf_counter()
            with self._client_lock:
                self._give_reports()
                while len(self._ready) < n and not self._exhausted:
                    self._generate(max(self.options["batch_size"], n - len(self._ready)))
            with self._state:
                self._ask_wait_seconds += time.perf_counter() - started
            return [self._ready.popleft() for _ in range(min(n, len(self._ready)))]
        with self._state:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="hwnas-ax", daemon=True)
                self._thread.start()
                # A daemon thread killed inside torch at interpreter exit aborts the process: stop it first.
                atexit.register(self.close)
            if self._should_fill() and (draws := self._fill(n)):
                return draws
            started = time.perf_counter()
            self._state.wait_for(lambda: self._ready or self._exhausted or self._failure is not None)
            self._ask_wait_seconds += time.perf_counter() - started
            self._raise_failure()
            proposals = [self._ready.popleft() for _ in range(min(n, len(self._ready)))]
            self._state.notify_all()  # fewer proposals ready: the thread may start the next Ax call
        return proposals

    def _should_fill(self) -> bool:
        """Whether ``ask`` hands out random draws now (holding ``_state``): past the quick Sobol phase (trials
        replayed on resume count), with no Ax proposal ready and Ax still able to propose."""
        return (
            self.options["fill_random"]
            and not self._ready
            and self._generated + self._observed >= self.options["n_sobol"]
            and not self._exhausted
            and self._failure is None
        )

    def _fill(self, n: int) -> list[Proposal]:
        """Up to ``n`` random draws of the space not drawn or replayed before (holding ``_state``).

        Draw ``i`` is seeded by ``(seed, _FILL_STREAM, i)``, a stream of its own (not the ``random``
        strategy's). A resumed sweep starts at ``i`` = the number of replayed trials; draws that were still
        running at the interruption are requeued, not replayed, so that start can fall among the earlier
        draws: configs replayed or drawn before are skipped by hash (a requeued draw still running when
        ``ask`` comes is not yet known and may be drawn again)."""
        proposals: list[Proposal] = []
        for _ in range(_FILL_ATTEMPTS * n):
            if len(proposals) == n:
                break
            draw = self._observed + self._random_count
            self._random_count += 1
            config = self.space.canonicalize(
                self.space.sample(np.random.default_rng([self.seed, _FILL_STREAM, draw]))
            )
            digest = self.space.config_hash(config)
            if digest in self._known_configs:
                continue
            self._known_configs.add(digest)
            key = f"random-{draw}"
            self._random_fills[key] = config
            self._fills_given += 1
            proposals.append(Proposal(key=key, config=config))
        return proposals

    def _work(self) -> None:
        """The background thread: give queued outcomes to Ax, keep ``batch_size`` proposals ready."""
        while True:
            with self._state:
                self._state.wait_for(lambda: self._closed or bool(self._reports) or self._wants_more())
                if self._closed:
                    return
                generate = self._wants_more()
            try:
                with self._client_lock:
                    self._give_reports()
                    if generate:
                        self._generate(self.options["batch_size"])
            except Exception as exc:  # surfaces as StrategyError at the next ask or tell
                with self._state:
                    self._failure = exc
                    self._state.notify_all()
                return

    def _wants_more(self) -> bool:
        return len(self._ready) < self.options["batch_size"] and not self._exhausted and self._failure is None

    def _generate(self, count: int) -> None:
        """Ask Ax for ``count`` new trials and make them ready as canonical configs (called holding the
        client lock; one critical section, so ``ask`` never sees them counted but not ready)."""
        started = time.perf_counter()
        try:
            trials = self._client.get_next_trials(max_trials=count)
        except Exception as exc:  # any Ax failure while proposing stops the sweep with Ax's message
            raise StrategyError(f"Ax failed to propose trials: {exc.__class__.__name__}: {exc}") from exc
        elapsed = time.perf_counter() - started
        proposals = []
        for index, parameters in trials.items():  # the key is Ax's trial index as text
            proposals.append(
                Proposal(key=str(index), config=self.space.canonicalize(self.space.from_ax(parameters)))
            )
        with self._state:
            self._ready.extend(proposals)
            self._ax_calls += 1
            self._ax_seconds += elapsed
            self._ax_longest_call = max(self._ax_longest_call, elapsed)
            self._generated += len(proposals)
            self._exhausted = not proposals  # Ax proposes nothing more only for an exhausted finite space
            self._state.notify_all()
        log.debug("Ax proposed %d trial(s) in %.1f s", len(proposals), elapsed)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            if isinstance(self._failure, StrategyError):
                raise StrategyError(str(self._failure)) from self._failure
            raise StrategyError(
                f"Ax failed: {self._failure.__class__.__name__}: {self._failure}"
            ) from self._failure

    # -- tell / observe -----------------------------------------------------------------------------
    def _tell(self, key: str, outcome: Outcome, values: list[float] | None) -> None:
        with self._state:
            self._raise_failure()
            random_draw = self._random_fills.get(key)
        if random_draw is None:
            self._queue(_Report(outcome, self._raw_data(outcome, values), index=int(key)))
            return
        self._attach(random_draw, outcome, values)  # Ax never proposed it: attach it with its outcome
        with self._state:
            del self._random_fills[key]

    def _observe(self, canonical: dict[str, Any], outcome: Outcome, values: list[float] | None) -> None:
        with self._state:
            self._observed += 1
            self._known_configs.add(self.space.config_hash(canonical))
        self._attach(canonical, outcome, values)

    def _attach(self, canonical: dict[str, Any], outcome: Outcome, values: list[float] | None) -> None:
        parameters = self.space.to_ax_parameters(canonical)
        self._queue(_Report(outcome, self._raw_data(outcome, values), parameters=parameters))

    def _raw_data(
        self, outcome: Outcome, values: list[float] | None
    ) -> dict[str, float | tuple[float, float]] | None:
        """Ax data for a finite Completed result, None for every outcome Ax gets no data for."""
        if not isinstance(outcome, Completed) or values is None or not all(map(math.isfinite, values)):
            return None
        sem = outcome.sem or {}
        return {
            o.name: (value, sem[o.name]) if o.name in sem else value
            for o, value in zip(self.objectives, values, strict=True)
        }

    def _queue(self, report: _Report) -> None:
        if self.options["background"]:
            with self._state:
                self._reports.append(report)
                self._state.notify_all()
            return
        with self._client_lock:
            self._reports.append(report)
            self._give_reports()

    def _give_reports(self) -> None:
        """Give the queued outcomes to the Client (called holding the client lock)."""
        with self._state:
            reports, self._reports = self._reports, []
        for report in reports:
            index = report.index
            if index is None:
                index = self._client.attach_trial(parameters=report.parameters or {})
            outcome = report.outcome
            if report.raw_data is not None:
                self._client.complete_trial(index, raw_data=report.raw_data)
                if not self._thresholds_checked:
                    self._results.append(
                        {k: v[0] if isinstance(v, tuple) else v for k, v in report.raw_data.items()}
                    )
            elif isinstance(outcome, Failed):
                self._client.mark_trial_failed(index, failed_reason=outcome.reason)
            elif isinstance(outcome, Completed | Pruned | Rejected):
                self._client.mark_trial_abandoned(index)
        self._check_thresholds()

    def _check_thresholds(self) -> None:
        """Drop the thresholds if none of the first ``n_sobol`` results meets them (holding the client lock)."""
        if self._thresholds_checked or len(self._results) < self.options["n_sobol"]:
            return
        self._thresholds_checked = True
        thresholds = self.options["thresholds"]
        bounded = [o for o in self.objectives if o.name in thresholds]

        def meets(result: dict[str, float]) -> bool:
            return all(
                result[o.name] <= thresholds[o.name]
                if o.direction == "minimize"
                else result[o.name] >= thresholds[o.name]
                for o in bounded
            )

        if any(meets(result) for result in self._results):
            return
        best = {
            o.name: (min if o.direction == "minimize" else max)(r[o.name] for r in self._results)
            for o in bounded
        }
        log.warning(
            "strategy 'ax': none of the first %d results meets the objective thresholds %s (best values %s); "
            "Ax goes on without thresholds, inferring its own. Loosen the sweep's reference_point (or the "
            "thresholds option) to focus the search.",
            len(self._results),
            thresholds,
            best,
        )
        self._client.configure_optimization(objective=self._objective)
        self._thresholds_dropped = True
        self._results = []

    # -- inspection and shutdown --------------------------------------------------------------------
    @contextmanager
    def client(self) -> Iterator[Client]:
        """The Ax Client with every outcome told so far given to it, locked against the background thread
        for the duration of the ``with`` block (waits for a running Ax call to finish)."""
        with self._client_lock:
            self._give_reports()
            yield self._client

    def close(self) -> None:
        """Stop the background thread (after its current Ax call). The strategy cannot propose afterwards."""
        with self._state:
            self._closed = True
            self._failure = self._failure or StrategyError("strategy 'ax' was closed")
            self._state.notify_all()
        if self._thread is not None:
            self._thread.join()
            atexit.unregister(self.close)

    def _extra_state(self) -> dict[str, Any]:
        with self._state:
            return {
                "ax_calls": self._ax_calls,
                "ax_proposals": self._generated,
                "ax_seconds": round(self._ax_seconds, 3),
                "ax_longest_call_seconds": round(self._ax_longest_call, 3),
                "ask_wait_seconds": round(self._ask_wait_seconds, 3),
                "random_fills": self._fills_given,
                "thresholds_dropped": self._thresholds_dropped,
                "ready": len(self._ready),
            }
