"""The store the dashboard tests read: a hand-made sweep with every kind of trial the pages show (all
states, a warm-start reference, replicates, metrics, cost reports, a recorded export folder) and a sweep
whose name, params and errors are HTML."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from search.storage import Store, TrialState

OBJECTIVES = [{"name": "emd_mean", "direction": "minimize"}, {"name": "bops", "direction": "minimize"}]
XSS_NAME = "<script>alert(1)</script>"


@dataclass(frozen=True)
class DemoStore:
    url: str
    export_folder: Path


def _layers(bops: float) -> list[dict[str, Any]]:
    return [
        {"name": "conv0", "class_name": "Conv2D", "bops": bops * 0.7, "dsp": 12, "lut": 300.0},
        {"name": "dense0", "class_name": "Dense", "bops": bops * 0.3, "dsp": 4, "lut": 120.0},
    ]


def fill_demo(store: Store, export_root: Path) -> Path:
    """Sweep 'demo': 30 trials (completed, failed, pruned, infeasible, running), a warm-start reference,
    replicates of one front trial, per-epoch metrics, cost reports and one recorded export folder."""
    sweep = store.create_sweep(
        "demo",
        config_yaml=yaml.safe_dump({"name": "demo", "trials": 30}),
        config_hash="demo",
        objectives=OBJECTIVES,
        reference_point=[3.0, 2.0e5],
    )
    for i in range(30):
        params = {
            "n_conv": 1,
            "conv0_filters": [4, 8, 16][i % 3],
            "conv0_kernel": 3,
            "conv0_stride": 1 + i % 2,
            "latent": [8, 12, 16][(i // 3) % 3],
            "quantize": i % 2 == 0,
            "weight_bits": 4 + i % 4,
            "act_bits": 6,
            "lr": round(0.001 * (1 + i), 4),
        }
        origin = "warm-start" if i == 0 else "search"
        trial = store.create_trial(sweep.id, params, config_hash=f"d{i}", origin=origin)
        if i == 29:
            continue  # stays queued
        store.start_trial(trial.id, worker="w1", host="node")
        if i == 28:
            continue  # running
        for epoch in (1, 2, 3):
            store.record_metrics(
                trial.id, epoch, {"train_loss": 1.0 / (epoch + i), "val_loss": 1.2 / (epoch + i)}
            )
        size = (i * 5) % 13  # quality improves with size, give or take: a front of several trials
        emd = round(0.4 + 2.4 / (1 + size) + ((i * 7) % 5) * 0.15, 3)
        bops = 1.0e4 * (1 + size)
        store.record_cost(
            trial.id, {"formula_version": "t", "totals": {"bops": bops, "dsp": 16}, "layers": _layers(bops)}
        )
        if i in (5, 17):
            store.finish_trial(trial.id, TrialState.FAILED, error=f"diverged <b>at epoch 3</b> in trial {i}")
        elif i in (8, 20):
            store.finish_trial(trial.id, TrialState.PRUNED)
        elif i == 11:
            store.finish_trial(trial.id, TrialState.INFEASIBLE, error="over the bops budget")
        else:
            store.finish_trial(trial.id, TrialState.COMPLETED, results={"emd_mean": emd, "bops": bops})
    front_trial = next(t for t in store.trials(sweep.id) if t.number == 3)
    for seed in (1, 2):
        replicate = store.create_trial(
            sweep.id, front_trial.params, config_hash="d3", origin="confirm", replicate_of=3, seed=seed
        )
        store.start_trial(replicate.id, worker="w1", host="node")
        store.finish_trial(
            replicate.id,
            TrialState.COMPLETED,
            results={k: v * (1 + 0.05 * seed) for k, v in front_trial.results.items()},
        )
    folder = export_root / "demo" / "trial-00003"
    (folder / "hls4ml_prj" / "firmware").mkdir(parents=True)
    (folder / "hls4ml_prj" / "firmware" / "myproject.cpp").write_text("// generated\n")
    (folder / "MANIFEST.sha256").write_text('{"trial": 3}\n')
    digest = hashlib.sha256((folder / "MANIFEST.sha256").read_bytes()).hexdigest()
    store.add_artifact(front_trial.id, "export", str(folder), digest)
    return folder


def fill_xss(store: Store) -> None:
    sweep = store.create_sweep(
        XSS_NAME,
        config_yaml=f"name: '{XSS_NAME}'\n",
        config_hash="x",
        objectives=[*OBJECTIVES, {"name": "latency_ns", "direction": "minimize"}],
        reference_point=None,
    )
    for i in range(4):
        trial = store.create_trial(
            sweep.id, {"note": f"<img src=x onerror=alert({i})>", "k": i}, config_hash=f"x{i}"
        )
        store.start_trial(trial.id, worker="<i>w</i>", host="h")
        store.finish_trial(
            trial.id,
            TrialState.COMPLETED if i else TrialState.FAILED,
            results={"emd_mean": 1.0 + i, "bops": 10.0 - i, "latency_ns": 5.0} if i else None,
            error=None if i else "<script>alert('error')</script>",
        )
