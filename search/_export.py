"""Export trained trials as hls4ml projects, verified against the torch/Brevitas model.

For each exported trial, ``OUT/trial-NNNNN/`` holds the written hls4ml project of the encoder
(``hls4ml_prj/``, ready for the vendor tool), the trained weights (``model.pt``), and ``summary.json``:
the config, the trial's results, the cost report and the bit-accuracy check (g++ emulation on
validation inputs: exact equality for quantized models, a stated tolerance for float ones).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from search._config import SweepConfig
from search.execution import SweepError
from search.execution._trial import hw_settings, task_data
from search.results import TrialSource, sweep_front
from search.storage._store import Store, SweepRecord, TrialRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult:
    number: int
    directory: Path
    verified: bool | None
    max_abs_error: float | None
    exact: bool | None


def select_trials(
    store: TrialSource, sweep: SweepRecord, numbers: list[int], pareto: bool
) -> list[TrialRecord]:
    """The trials to export: the front with ``pareto``, plus the numbered ones (which must be completed).

    ``store`` is read only: the CLI passes the read-only ``Results``."""
    if not numbers and not pareto:
        raise SweepError("say which trials to export: --trial N (repeatable) and/or --pareto")
    by_number = {t.number: t for t in store.trials(sweep.id)}
    chosen: dict[int, TrialRecord] = {}
    if pareto:
        chosen.update((t.number, t) for t in sweep_front(store, sweep)[0])
    for number in numbers:
        trial = by_number.get(number)
        if trial is None:
            raise SweepError(
                f"sweep {sweep.name!r} has no trial {number}; trials are 0..{len(by_number) - 1}"
            )
        if trial.state.value != "COMPLETED":
            raise SweepError(f"trial {number} is {trial.state.value}; only completed trials can be exported")
        chosen[number] = trial
    return [chosen[n] for n in sorted(chosen)]


def _checkpoint(store: Store, trial: TrialRecord) -> bytes:
    checkpoints = [a for a in store.artifacts(trial.id) if a["kind"] == "checkpoint"]
    if not checkpoints:
        raise SweepError(
            f"trial {trial.number} has no checkpoint (checkpoints are kept next to a SQLite store, in "
            "<store>.runs/<sweep>/)"
        )
    path = Path(checkpoints[-1]["path"])
    try:
        payload = path.read_bytes()
    except FileNotFoundError:
        raise SweepError(f"trial {trial.number}: checkpoint {path} is missing") from None
    if hashlib.sha256(payload).hexdigest() != checkpoints[-1]["sha256"]:
        raise SweepError(f"trial {trial.number}: checkpoint {path} does not match its recorded sha256")
    return payload


def export_trial(
    store: Store, config: SweepConfig, trial: TrialRecord, out: Path, *, verify: bool = True, rows: int = 256
) -> ExportResult:
    """Write one trial's encoder as an hls4ml project under ``out`` and check it bit for bit."""
    from hw_models import to_hls4ml, verify_bit_exact
    from objectives import get_task

    payload = _checkpoint(store, trial)
    task = get_task(config.task.name, loss=config.task.loss)
    model = task.build_model(trial.params)
    if model.gated:  # node pruning: the checkpoint holds the smaller network
        model = model.prune_nodes()
    model.load_state_dict(torch.load(io.BytesIO(payload), weights_only=True))
    model.eval()

    directory = out / f"trial-{trial.number:05d}"
    staging = directory.with_name(directory.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    settings = hw_settings(config.hardware)
    on_chip = task.on_chip(model)
    hls_model = to_hls4ml(on_chip, task.input_shape, settings, output_dir=str(staging / "hls4ml_prj"))
    hls_model.write()
    (staging / "model.pt").write_bytes(payload)

    check: dict[str, Any] | None = None
    if verify:
        data = task_data(config.task, config.seed)  # prepared once, shared by every exported trial
        report = verify_bit_exact(on_chip, hls_model, data.val_x[:rows])
        check = asdict(report)
    summary = {
        "sweep": config.name,
        "trial": trial.number,
        "params": trial.params,
        "results": trial.results,
        "cost": store.costs([trial.id]).get(trial.id),  # the trial's final (post-training) report
        "verification": check,
        "note": "cost figures are estimates from the hls4ml model graph, not synthesis results",
    }
    (staging / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)  # a reader never sees half an export
    digest = hashlib.sha256((directory / "summary.json").read_bytes()).hexdigest()
    store.add_artifact(trial.id, "hls4ml", str(directory), digest)
    log.info("exported trial %d to %s", trial.number, directory)
    return ExportResult(
        trial.number,
        directory,
        None if check is None else bool(check["passed"]),
        None if check is None else float(check["max_abs_error"]),
        None if check is None else bool(check["exact"]),
    )
