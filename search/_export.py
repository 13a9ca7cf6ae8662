"""Export trained trials to firmware: one verified folder per model, plus an index.

``OUT/trial-NNNNN/`` holds, per exported model (the on-chip part, or the whole model with ``full``):

- ``config.json`` (the canonical config) and ``model.pt`` (the trained torch state_dict of the whole model);
- ``model.onnx`` (float) or ``model.qonnx.onnx`` (Brevitas, through its QONNX export), reloaded and checked
  against torch on the validation rows;
- ``hls4ml_prj/`` (the hls4ml project for the Vitis backend, written and compiled for g++ emulation, not
  synthesised) and ``hls4ml_config.json``;
- ``cost.json`` / ``cost.md`` (the CostReport of the exported graph), ``metrics.json`` (stored, confirmed,
  re-evaluated in torch and in the hls4ml emulation), ``verification.json`` (the bit-accuracy report and
  every precision tried), ``README.md`` (the model card) and ``MANIFEST.sha256`` (every file's checksum).

Quantized models must be bit-exact. A float model gets per-layer fixed-point types from its weights and
its activations on the validation rows, at the narrowest common width whose emulation keeps every task
metric among the objectives within ``tolerance`` (relative) of torch's; ``precision`` sets one type for
every tensor instead. Everything is written under a temporary sibling of OUT and renamed at the end.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from search._config import SweepConfig
from search.execution import SweepError
from search.execution._trial import hw_settings, job_task, task_data
from search.results import describe, evaluations, sweep_front
from search.storage._records import SweepRecord, TrialRecord
from search.storage._store import Store

if TYPE_CHECKING:
    from search.results import Results

log = logging.getLogger(__name__)

# Widths a float model's precision search may use (bisected; the narrowest passing one is kept).
FLOAT_WIDTHS = tuple(range(8, 33, 2))
DEFAULT_TOLERANCE = 0.01
# Largest |ONNX - torch| accepted on the validation rows (float32 arithmetic in both).
ONNX_TOLERANCE = 1e-4
_QONNX_NODE_IR_VERSION = 10
_VERSIONED = ("hwnas", "torch", "brevitas", "hls4ml", "onnx", "onnxruntime", "qonnx", "numpy")


@dataclass(frozen=True)
class ExportOptions:
    """How trials are exported (see the module docstring); ``io_type``, ``reuse_factor`` and ``strategy``
    override the sweep's hardware settings when set."""

    out: Path
    full: bool = False
    precision: str | None = None
    tolerance: float = DEFAULT_TOLERANCE
    io_type: str | None = None
    reuse_factor: int | None = None
    strategy: str | None = None
    force: bool = False


@dataclass(frozen=True)
class MemberResult:
    """One exported model: whether it verified, with the figures the index shows."""

    number: int
    folder: str
    quantized: bool
    verified: bool
    exact: bool
    precision: str
    max_abs_error: float
    metric_changes: dict[str, float] = field(default_factory=dict)
    problem: str | None = None


@dataclass(frozen=True)
class ExportSummary:
    out: Path
    members: list[MemberResult]

    @property
    def all_verified(self) -> bool:
        return all(member.verified for member in self.members)


# -- which trials ---------------------------------------------------------------------------------------
def select_trials(
    store: Results,
    sweep: SweepRecord,
    *,
    numbers: Sequence[int] = (),
    pareto: bool = False,
    best: str | None = None,
    limits: Sequence[str] = (),
    directions: Mapping[str, str] | None = None,
) -> tuple[list[TrialRecord], dict[int, int]]:
    """The trials to export, and the rank along the front (1 = best first objective) of those on it. In
    front order then as asked: the front with ``pareto``, the numbered trials
    (which must be completed), and with ``best`` the completed search trial with the best mean of that
    metric over its evaluations (the trial and its replicates) among those whose stored cost meets every
    ``limits`` expression (e.g. ``"ops <= 6544"``). ``directions`` gives each metric's direction (default
    minimize). ``store`` is read only: the CLI passes the read-only ``Results``.

    Raises:
        SweepError: nothing asked for, an unknown or unfinished trial, an unknown metric, or no trial
            within the limits.
    """
    from hw_models import Budget

    if not numbers and not pareto and best is None:
        raise SweepError("say which trials to export: --pareto, --trial N (repeatable) or --best METRIC")
    if limits and best is None:
        raise SweepError("--max applies to --best: say which metric to optimise within the limits")
    budgets = [Budget.parse(text) for text in limits]
    trials = store.trials(sweep.id)
    by_number = {t.number: t for t in trials}
    front = sweep_front(store, sweep)[0]
    ranks = {t.number: rank for rank, t in enumerate(front, start=1)}
    chosen: dict[int, TrialRecord] = {}
    if pareto:
        chosen.update((t.number, t) for t in front)
    for number in numbers:
        trial = by_number.get(number)
        if trial is None:
            raise SweepError(
                f"sweep {sweep.name!r} has no trial {number}; trials are 0..{len(by_number) - 1}"
            )
        if trial.state.value != "COMPLETED":
            raise SweepError(f"trial {number} is {trial.state.value}; only completed trials can be exported")
        chosen.setdefault(number, trial)
    if best is not None:
        winner = _best_trial(store, trials, best, budgets, (directions or {}).get(best, "minimize"))
        chosen.setdefault(winner.number, winner)
    return list(chosen.values()), ranks


def _best_trial(
    store: Results, trials: list[TrialRecord], metric: str, budgets: Sequence[Any], direction: str
) -> TrialRecord:
    from hw_models import CostReport

    runs = evaluations(trials)
    known = sorted({name for group in runs.values() for t in group for name in t.results})
    if metric not in known:
        raise SweepError(
            f"--best {metric!r}: no completed trial has that metric; allowed: {', '.join(known) or 'none'}"
        )
    costs = store.costs([group[0].id for group in runs.values()]) if budgets else {}
    candidates: list[tuple[float, TrialRecord]] = []
    for group in runs.values():
        values = [t.results[metric] for t in group if metric in t.results]
        if not values:
            continue
        if budgets:
            stored = costs.get(group[0].id)
            if stored is None:
                continue
            report = CostReport.from_dict(stored)
            if any(budget.check(report) is not None for budget in budgets):
                continue
        mean = float(np.mean(values))
        candidates.append((mean if direction == "minimize" else -mean, group[0]))
    if not candidates:
        limits = " and ".join(str(b) for b in budgets)
        raise SweepError(f"no completed trial has {metric} with a stored cost within {limits}")
    return min(candidates, key=lambda pair: (pair[0], pair[1].number))[1]


# -- checks made before anything is written ---------------------------------------------------------------
def check_out(out: Path, *, force: bool) -> None:
    """SweepError when ``out`` is a file, or an existing non-empty directory without ``force``."""
    if out.exists() and not out.is_dir():
        raise SweepError(
            f"--out {out} is a file; allowed: a new or empty directory (or an existing one with --force)"
        )
    if out.is_dir() and any(out.iterdir()) and not force:
        raise SweepError(
            f"--out {out} exists and is not empty; choose a new directory or pass --force to replace it"
        )


def load_checkpoint(store: Store, trial: TrialRecord) -> bytes:
    """The trial's checkpoint, checked against its recorded sha256.

    Raises:
        SweepError: no checkpoint recorded (a failed, pruned or infeasible trial, or one from a store that
            kept none), or the file is missing or altered.
    """
    checkpoints = [a for a in store.artifacts(trial.id) if a["kind"] == "checkpoint"]
    if not checkpoints:
        raise SweepError(
            f"trial {trial.number} ({trial.state.value}) has no checkpoint (checkpoints are kept next to a "
            "SQLite store, in <store>.runs/<sweep>/, for completed trials)"
        )
    path = Path(checkpoints[-1]["path"])
    try:
        payload = path.read_bytes()
    except FileNotFoundError:
        raise SweepError(f"trial {trial.number}: checkpoint {path} is missing") from None
    if hashlib.sha256(payload).hexdigest() != checkpoints[-1]["sha256"]:
        raise SweepError(f"trial {trial.number}: checkpoint {path} does not match its recorded sha256")
    return payload


def export_settings(config: SweepConfig, options: ExportOptions) -> Any:
    """The sweep's HWSettings with the export's overrides (HWError names a bad value)."""
    from hw_models import HWSettings

    base = hw_settings(config.hardware).to_dict()
    overrides = {
        "io_type": options.io_type,
        "reuse_factor": options.reuse_factor,
        "strategy": options.strategy,
        "default_precision": options.precision,
    }
    return HWSettings.from_dict({**base, **{k: v for k, v in overrides.items() if v is not None}})


# -- the export -----------------------------------------------------------------------------------------
def export_trials(
    store: Store,
    config: SweepConfig,
    trials: Sequence[TrialRecord],
    options: ExportOptions,
    *,
    ranks: Mapping[int, int] | None = None,
    progress: Callable[[TrialRecord, str], None] | None = None,
) -> ExportSummary:
    """Export ``trials`` into ``options.out`` (see the module docstring) and write its index.

    ``ranks`` numbers front members along the front for the index; ``progress`` is told each step.

    Raises:
        SweepError: a bad ``--out``, a trial without a usable checkpoint (checked for every trial before
            anything is written).
        HWError: invalid hardware overrides or precision.
    """
    settings = export_settings(config, options)
    check_out(options.out, force=options.force)
    checkpoints = {t.number: load_checkpoint(store, t) for t in trials}
    task = job_task(config.task)
    _check_distributed(settings, task, trials, full=options.full)
    data = task_data(config.task, config.seed)  # the validation rows the stored metrics come from
    all_trials = store.trials(trials[0].sweep_id) if trials else []
    runs = evaluations(all_trials)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    staging = options.out.with_name(f".{options.out.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)  # left by a killed export of a process with this id
    staging.mkdir()
    try:
        members = []
        for trial in trials:
            folder = f"trial-{trial.number:05d}"
            member = _Member(
                config,
                task,
                data,
                trial,
                checkpoints[trial.number],
                runs.get(trial.number, [trial]),
                settings,
                options,
                staging / folder,
                progress,
            )
            members.append(member.export())
            if progress is not None:
                progress(trial, "done")
        _write_index(staging, config, trials, members, ranks or {})
        _publish(staging, options.out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for trial, result in zip(trials, members, strict=True):
        manifest = options.out / result.folder / "MANIFEST.sha256"
        if manifest.is_file():
            store.add_artifact(trial.id, "export", str(manifest.parent), _sha256(manifest))
    return ExportSummary(options.out, members)


def _check_distributed(settings: Any, task: Any, trials: Sequence[TrialRecord], *, full: bool) -> None:
    """Distributed arithmetic only for fixed-point (quantized) parts: HWError naming the float trials."""
    from hw_models import DISTRIBUTED_ARITHMETIC, HWError

    if settings.strategy != DISTRIBUTED_ARITHMETIC:
        return
    floats = [t.number for t in trials if not getattr(task.build_model(t.params), "quantized", False)]
    if floats or full:
        what = (
            f"trial(s) {', '.join(map(str, floats))} are float" if floats else "--full adds the float decoder"
        )
        raise HWError(
            f"--strategy distributed_arithmetic needs quantized models, and {what}: da4ml turns fixed-point "
            "weights into adder trees (a float model's conversion ran for over 5 minutes); export those "
            "with Latency or Resource, or pick quantized trials with --trial"
        )


def _publish(staging: Path, out: Path) -> None:
    """Rename the finished export into place; a replaced OUT (``--force``) is removed only afterwards."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class _Member:
    """The export of one trial into its folder."""

    def __init__(
        self,
        config: SweepConfig,
        task: Any,
        data: Any,
        trial: TrialRecord,
        checkpoint: bytes,
        runs: list[TrialRecord],
        settings: Any,
        options: ExportOptions,
        folder: Path,
        progress: Callable[[TrialRecord, str], None] | None,
    ) -> None:
        self.config, self.task, self.data, self.trial = config, task, data, trial
        self.checkpoint, self.runs, self.settings, self.options = checkpoint, runs, settings, options
        self.folder = folder
        self.progress = progress or (lambda _trial, _step: None)
        model = task.build_model(trial.params)
        self.model = (
            model.prune_nodes() if model.gated else model
        )  # node pruning: the checkpoint is the smaller network
        self.model.load_state_dict(torch.load(io.BytesIO(checkpoint), weights_only=True))
        self.model.eval()
        self.part: nn.Module = self.model if options.full else task.on_chip(self.model)
        self.quantized = bool(getattr(self.model, "quantized", False))
        # A quantized encoder is bit-exact; a float decoder exported with it (--full) is not.
        self._exact = self.quantized and not options.full
        self.metric_names = [o.name for o in config.objectives if o.name in task.metric_directions] or [
            task.primary_metric
        ]

    def export(self) -> MemberResult:
        from hw_models import HWError

        self.folder.mkdir()
        (self.folder / "model.pt").write_bytes(self.checkpoint)
        _write_json(self.folder / "config.json", self.trial.params)
        self.progress(self.trial, "ONNX")
        onnx_check = self._write_onnx()
        torch_metrics = self.task.evaluate(self.model, self.data)
        self.progress(self.trial, "hls4ml")
        try:
            hls_model, verification = self._write_hls4ml(torch_metrics)
        except HWError as error:  # e.g. a --full decoder hls4ml cannot convert: the others still export
            return self._failed(f"hls4ml: {error}", onnx_check, torch_metrics)
        from hw_models import cost_of_graph

        cost = cost_of_graph(hls_model, self.settings, quantized=self.quantized)
        _write_json(self.folder / "cost.json", cost.to_dict())
        (self.folder / "cost.md").write_text(_cost_table(cost))
        metrics = {
            "stored": self.trial.results,
            "confirmed": self._confirmed(),
            "torch": torch_metrics,
            "hls4ml": verification["metrics"],
            "onnx": onnx_check,
        }
        _write_json(self.folder / "metrics.json", metrics)
        _write_json(self.folder / "verification.json", verification)
        (self.folder / "README.md").write_text(self._card(metrics, verification, cost))
        _write_manifest(self.folder)
        return MemberResult(
            number=self.trial.number,
            folder=self.folder.name,
            quantized=self.quantized,
            verified=bool(verification["passed"] and onnx_check["passed"]),
            exact=bool(verification["outputs"]["exact"]),
            precision=verification["precision"],
            max_abs_error=float(verification["outputs"]["max_abs_error"]),
            metric_changes=verification["metric_changes"],
            problem=None if onnx_check["passed"] else f"{onnx_check['file']} differs from torch",
        )

    def _failed(
        self, problem: str, onnx_check: dict[str, Any], torch_metrics: dict[str, float]
    ) -> MemberResult:
        shutil.rmtree(self.folder / "hls4ml_prj", ignore_errors=True)
        _write_json(self.folder / "verification.json", {"passed": False, "problem": problem})
        _write_json(
            self.folder / "metrics.json",
            {"stored": self.trial.results, "torch": torch_metrics, "onnx": onnx_check},
        )
        (self.folder / "README.md").write_text(
            f"# Trial {self.trial.number} of sweep {self.config.name}: NOT EXPORTED TO HLS\n\n{problem}\n"
        )
        _write_manifest(self.folder)
        return MemberResult(
            self.trial.number, self.folder.name, self.quantized, False, False, "", math.nan, {}, problem
        )

    # -- ONNX / QONNX -----------------------------------------------------------------------------------
    def _write_onnx(self) -> dict[str, Any]:
        """Write the exported part as ONNX (float) or QONNX (Brevitas), reload it and compare with torch."""
        x = self.data.val_x
        with torch.no_grad():
            expected = _as_tensor(self.part(x)).double().numpy()
        example = x[:1]
        if self.quantized:
            from brevitas.export import export_qonnx

            path = self.folder / "model.qonnx.onnx"
            export_qonnx(self.part, example, export_path=str(path), dynamo=False)
            got = _run_qonnx(path, x.numpy())
        else:
            path = self.folder / "model.onnx"
            torch.onnx.export(
                self.part,
                (example,),
                str(path),
                input_names=["x"],
                output_names=["y"],
                dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                dynamo=False,
            )
            got = _run_onnx(path, x.numpy())
        error = float(np.max(np.abs(got.reshape(expected.shape) - expected)))
        return {
            "file": path.name,
            "rows": len(x),
            "max_abs_error": error,
            "tolerance": ONNX_TOLERANCE,
            "passed": error <= ONNX_TOLERANCE,
        }

    # -- hls4ml -----------------------------------------------------------------------------------------
    def _write_hls4ml(self, torch_metrics: dict[str, float]) -> tuple[Any, dict[str, Any]]:
        """Choose the fixed-point types (verifying each candidate in the g++ emulation), then write the
        project of the chosen one."""
        from hw_models import layer_precisions, profile_ranges, to_hls4ml

        precisions: dict[str, dict[str, str]] | None = None
        settings = self.settings
        how = "the Brevitas quantizers' (bit-exact mirror)"
        if self.options.precision is not None:
            attempts = [self._attempt(None, torch_metrics)]
            how = (how + "; the float decoder" if self.quantized else "every tensor") + (
                f" at {self.settings.default_precision} (--precision)"
            )
        elif self.quantized and self.options.full:
            # The float decoder's tensors take the default type: the narrowest ap_fixed<W,I> that passes.
            attempts = self._search_width(
                lambda width: self._attempt(None, torch_metrics, self._decoder_settings(width))
            )
        elif self.quantized:
            attempts = [self._attempt(None, torch_metrics)]
        else:
            ranges = profile_ranges(self.part, self.data.val_x)
            attempts = self._search_width(
                lambda width: self._attempt(layer_precisions(ranges, width), torch_metrics)
            )
        chosen = next((a for a in attempts if a["passed"]), attempts[-1])
        if "width" in chosen and self.quantized:
            settings = self._decoder_settings(chosen["width"])
            how += f"; the float decoder at {settings.default_precision}"
        elif "width" in chosen:
            precisions = layer_precisions(ranges, chosen["width"])
            how = f"per layer from the weights and the activations on the validation rows, {chosen['width']} bits wide"
        graph = to_hls4ml(
            self.part,
            self.task.input_shape,
            settings,
            output_dir=str(self.folder / "hls4ml_prj"),
            precisions=precisions,
        )
        with _quiet():
            graph.write()  # the project a vendor tool builds; the emulation was compiled for each attempt
        _write_json(self.folder / "hls4ml_config.json", graph.config.config["HLSConfig"])
        verification = {
            "passed": chosen["passed"],
            "kind": "bit-exact outputs" if self._exact else "task metrics within tolerance",
            "precision": how,
            "precisions": {
                layer.name: {name: str(t.precision) for name, t in layer.types.items()}
                for layer in graph.get_layers()
            },
            "outputs": chosen["outputs"],
            "metrics": chosen["metrics"],
            "metric_changes": chosen["metric_changes"],
            "metric_tolerance": self.options.tolerance,
            "rows": len(self.data.val_x),
            "attempts": [{k: v for k, v in a.items() if k != "metrics"} for a in attempts],
        }
        return graph, verification

    def _decoder_settings(self, width: int) -> Any:
        """The export's settings with ``ap_fixed<width, I>`` as the default type (the integer bits I of
        the sweep's default type kept)."""
        from hw_models import parse_precision

        _, integer = parse_precision(self.settings.default_precision)
        return dataclasses.replace(self.settings, default_precision=f"ap_fixed<{width},{integer}>")

    @staticmethod
    def _search_width(attempt_at: Callable[[int], dict[str, Any]]) -> list[dict[str, Any]]:
        """Bisect FLOAT_WIDTHS for the narrowest width whose attempt passes; the attempts by width (a
        passing one first when there is one)."""
        tried: dict[int, dict[str, Any]] = {}
        low, high = 0, len(FLOAT_WIDTHS) - 1
        while low <= high:
            middle = (low + high) // 2
            width = FLOAT_WIDTHS[middle]
            tried[width] = {"width": width, **attempt_at(width)}
            if tried[width]["passed"]:
                high = middle - 1
            else:
                low = middle + 1
        attempts = [tried[w] for w in sorted(tried)]
        return sorted(attempts, key=lambda a: not a["passed"])

    def _attempt(
        self,
        precisions: dict[str, dict[str, str]] | None,
        torch_metrics: dict[str, float],
        settings: Any = None,
    ) -> dict[str, Any]:
        """Convert, compile (g++) and run one candidate on the validation rows, in a scratch directory
        (with ``settings``, the export's when None)."""
        from hw_models import to_hls4ml, verify_bit_exact

        with tempfile.TemporaryDirectory(prefix="hwnas-export-") as scratch:
            graph = to_hls4ml(
                self.part,
                self.task.input_shape,
                settings or self.settings,
                output_dir=scratch,
                precisions=precisions,
            )
            check = verify_bit_exact(
                self.part, graph, self.data.val_x, tolerance=0.0 if self._exact else math.inf
            )
            emulated = self._emulated_metrics(graph)
        changes = {name: _relative_change(emulated[name], torch_metrics[name]) for name in self.metric_names}
        within = all(abs(change) <= self.options.tolerance for change in changes.values())
        outputs = dataclasses.asdict(check)
        if not self._exact:  # judged on the task metrics, not on an output tolerance
            del outputs["tolerance"], outputs["passed"]
        return {
            "passed": check.exact if self._exact else within,
            "outputs": outputs,
            "metrics": emulated,
            "metric_changes": changes,
        }

    def _emulated_metrics(self, graph: Any) -> dict[str, float]:
        """The task's metrics with the exported part running in the hls4ml emulation."""
        with torch.no_grad():
            shape = tuple(_as_tensor(self.part(self.data.val_x[:1])).shape[1:])
        emulation = _Emulation(graph, shape)
        if self.options.full:
            return dict(self.task.evaluate(emulation, self.data))
        model = copy.deepcopy(self.model)
        path = next(name for name, module in self.model.named_modules() if module is self.part)
        model.set_submodule(path, emulation)
        return dict(self.task.evaluate(model, self.data))

    def _confirmed(self) -> dict[str, Any] | None:
        if len(self.runs) < 2:
            return None
        names = sorted(set.intersection(*(set(t.results) for t in self.runs)))
        values = {n: np.array([t.results[n] for t in self.runs], dtype=float) for n in names}
        return {
            "runs": len(self.runs),
            "trials": [t.number for t in self.runs],
            "mean": {n: float(v.mean()) for n, v in values.items()},
            "std": {n: float(v.std(ddof=1)) for n, v in values.items()},
        }

    # -- the model card ---------------------------------------------------------------------------------
    def _card(self, metrics: dict[str, Any], verification: dict[str, Any], cost: Any) -> str:
        status = "VERIFIED" if verification["passed"] else "NOT VERIFIED"
        what = "whole model (encoder and decoder)" if self.options.full else "on-chip part"
        kind = "quantized (Brevitas QAT)" if self.quantized else "float"
        lines = [
            f"# Trial {self.trial.number} of sweep `{self.config.name}`: {status}",
            "",
            f"Task `{self.config.task.name}`; exported: the {what}, {kind}. "
            f"Architecture: {describe(self.trial.params)}.",
            "",
            "```",
            str(self.part),
            "```",
            "",
            "## Verification (hls4ml C++ emulation compiled with g++, on "
            f"{verification['rows']} validation rows)",
            "",
        ]
        outputs = verification["outputs"]
        if self.quantized:
            lines.append(
                f"- outputs bit-exact: {outputs['exact']} ({outputs['identical_share']:.2%} of "
                f"{outputs['n_outputs']} values identical, max |error| {outputs['max_abs_error']:.3g})"
            )
        else:
            lines.append(
                f"- task metrics within ±{self.options.tolerance:.2%} of torch: {verification['passed']} "
                f"(max |error| of the outputs {outputs['max_abs_error']:.3g})"
            )
        for name, change in verification["metric_changes"].items():
            lines.append(
                f"- {name}: torch {metrics['torch'][name]:.6g}, hls4ml {metrics['hls4ml'][name]:.6g} "
                f"(change {change:+.3%})"
            )
        lines.append(f"- fixed-point types: {verification['precision']} (every layer in verification.json)")
        onnx = metrics["onnx"]
        lines += [
            f"- {onnx['file']} reloaded: max |ONNX - torch| {onnx['max_abs_error']:.3g} on {onnx['rows']} rows",
            "",
            "## Quality metrics (validation rows)",
            "",
            "| metric | this trial (stored) | confirmed mean ± std | torch (re-evaluated) | hls4ml emulation |",
            "| --- | --- | --- | --- | --- |",
        ]
        confirmed = metrics["confirmed"]
        for name in self.task.metric_directions:
            if name not in metrics["torch"]:
                continue
            mean_std = (
                f"{confirmed['mean'][name]:.6g} ± {confirmed['std'][name]:.3g} ({confirmed['runs']} runs)"
                if confirmed and name in confirmed["mean"]
                else ""
            )
            stored = self.trial.results.get(name)
            lines.append(
                f"| {name} | {'' if stored is None else f'{stored:.6g}'} | {mean_std} | "
                f"{metrics['torch'][name]:.6g} | {metrics['hls4ml'][name]:.6g} |"
            )
        settings = cost.settings
        lines += [
            "",
            f"## Hardware cost (estimates from the hls4ml graph, {cost.formula_version}; no synthesis)",
            "",
            f"Settings: {settings.io_type}, {settings.strategy}, reuse factor {settings.reuse_factor}, "
            f"clock {settings.clock_period_ns} ns, part {settings.part}, backend {settings.backend}.",
            "",
            "| quantity | total |",
            "| --- | --- |",
            *(f"| {name} | {_number(value)} |" for name, value in cost.totals.items()),
            "",
            "Per layer: cost.md.",
            "",
            "## Training",
            "",
            f"- data: {self.config.task.data}, {self.config.task.rows} rows, {self.config.task.val_rows} "
            f"validation rows, split seed {self.config.seed}; loss {self.task.loss_name}",
            f"- {self.config.epochs} epochs (reached {self.trial.fidelity}), batch size "
            f"{self.trial.params.get('batch_size', 500)}, learning rate {self.trial.params.get('lr', 1e-3)}",
            "- config: config.json; weights: model.pt (torch state_dict of the whole model)",
            "",
            "## Build with Vitis HLS (not done here: no Vitis is installed)",
            "",
            "```bash",
            "cd hls4ml_prj",
            "# build_opt.tcl selects the steps (csim, synth, cosim, validation, export, vsynth)",
            "vitis-run --tcl build_prj.tcl --mode hls     # Vitis 2024.2 and later (what hls4ml's build() runs)",
            "# older Vitis HLS: vitis_hls -f build_prj.tcl",
            "```",
            "",
            "`hls4ml_prj/build_lib.sh` builds the g++ emulation library the verification ran "
            "(`hls4ml.converters.link_existing_project` loads it).",
            "",
            "## Package versions",
            "",
            *(f"- {name} {version}" for name, version in _versions().items()),
            "",
            "Checksums of every file: MANIFEST.sha256 (`sha256sum -c MANIFEST.sha256`).",
            "",
        ]
        return "\n".join(lines)


class _Emulation(nn.Module):
    """A compiled hls4ml graph in place of a torch module: inputs and outputs of more than one dimension are
    channels-last inside hls4ml (see ``to_hls4ml``), torch's layout outside."""

    def __init__(self, graph: Any, output_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.graph, self.output_shape = graph, output_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inputs = x.detach().double().numpy()
        if inputs.ndim > 2:
            inputs = np.moveaxis(inputs, 1, -1)
        with _quiet():
            outputs = np.asarray(self.graph.predict(np.ascontiguousarray(inputs)), dtype=np.float32)
        if len(self.output_shape) > 1:
            channels, *spatial = self.output_shape
            outputs = np.moveaxis(outputs.reshape(len(x), *spatial, channels), -1, 1)
        return torch.from_numpy(np.ascontiguousarray(outputs).reshape(len(x), *self.output_shape))


def _quiet() -> Any:
    from hw_models import hls4ml_output

    return hls4ml_output()


def _as_tensor(value: Any) -> torch.Tensor:
    return value.value if hasattr(value, "value") and not isinstance(value, torch.Tensor) else value


def _run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(
        session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0], dtype=np.float64
    )


def _run_qonnx(path: Path, x: np.ndarray) -> np.ndarray:
    """Run a QONNX file with qonnx's executor (its Quant nodes are custom ops onnxruntime lacks)."""
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.cleanup import cleanup_model

    # qonnx runs each standard node (when folding constants, too) as a one-node model stamped with the
    # installed onnx's IR version (14), newer than onnxruntime 1.31 loads (13); the nodes need no newer IR
    # than 10.
    saved = onnx.IR_VERSION
    onnx.IR_VERSION = _QONNX_NODE_IR_VERSION  # type: ignore[assignment]  # onnx types it as its Version enum
    try:
        model = cleanup_model(ModelWrapper(str(path)))
        model = model.transform(ChangeBatchSize(len(x))).transform(InferShapes())
        name, output = model.graph.input[0].name, model.graph.output[0].name
        result = execute_onnx(model, {name: x.astype(np.float32)})[output]
    finally:
        onnx.IR_VERSION = saved
    return np.asarray(result, dtype=np.float64)


def _relative_change(value: float, reference: float) -> float:
    if value == reference:
        return 0.0
    return (value - reference) / abs(reference) if reference != 0 else math.inf


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4g}"


def _cost_table(cost: Any) -> str:
    columns = (
        "name",
        "class_name",
        "n_in",
        "n_out",
        "weight_bits",
        "input_bits",
        "output_bits",
        "multiplications",
        "bops",
        "multipliers",
        "dsp",
        "lut",
        "bram",
        "latency_cycles",
        "ii",
    )
    lines = [
        f"# Hardware cost estimate ({cost.formula_version}; from the hls4ml graph, no synthesis)",
        "",
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join("---" for _ in columns) + " |",
    ]
    for layer in cost.layers:
        row = layer.to_dict()
        lines.append(
            "| "
            + " | ".join(str(row[c]) if isinstance(row[c], str) else _number(row[c]) for c in columns)
            + " |"
        )
    lines += [
        "",
        "| total | value |",
        "| --- | --- |",
        *(f"| {k} | {_number(v)} |" for k, v in cost.totals.items()),
        "",
    ]
    return "\n".join(lines)


def _versions() -> dict[str, str]:
    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, default=float) + "\n")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_manifest(folder: Path) -> None:
    """``sha256sum``-format checksums of every file under ``folder`` (``sha256sum -c`` checks them)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "MANIFEST.sha256")
    lines = [f"{_sha256(p)}  {p.relative_to(folder).as_posix()}" for p in files]
    (folder / "MANIFEST.sha256").write_text("\n".join(lines) + "\n")


def _write_index(
    out: Path,
    config: SweepConfig,
    trials: Sequence[TrialRecord],
    members: list[MemberResult],
    ranks: Mapping[int, int],
) -> None:
    """index.csv and index.md: the exported models along the front (front rank, then as asked)."""
    objectives = [o.name for o in config.objectives]
    order = sorted(range(len(trials)), key=lambda i: (ranks.get(trials[i].number, math.inf), i))
    header = [
        "front_rank",
        "trial",
        *objectives,
        "quantized",
        "verified",
        "bit_exact",
        "metric_change",
        "precision",
        "folder",
    ]
    rows = []
    for i in order:
        trial, member = trials[i], members[i]
        rank = ranks.get(trial.number)
        change = max((abs(c) for c in member.metric_changes.values()), default=math.nan)
        rows.append(
            [
                "" if rank is None else str(rank),
                str(trial.number),
                *(_number(trial.results[o]) if o in trial.results else "" for o in objectives),
                str(member.quantized),
                str(member.verified),
                str(member.exact),
                "" if math.isnan(change) else f"{change:.3%}",
                member.precision or (member.problem or ""),
                member.folder,
            ]
        )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    (out / "index.csv").write_text(buffer.getvalue())
    lines = [
        f"# Exported models of sweep `{config.name}`",
        "",
        "Front members are ranked along the front (by the first objective). Cost figures are estimates from "
        "the hls4ml graph (no synthesis). Each folder's README.md is its model card.",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        *("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows),
        "",
    ]
    (out / "index.md").write_text("\n".join(lines))
