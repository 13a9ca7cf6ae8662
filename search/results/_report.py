"""Pareto-front reports for people: rows, CSV/JSON, and the quality-vs-cost plot."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.results._fronts import TrialSource, completed_search_trials, front_of
from search.results._pareto import hypervolume_history
from search.storage._records import SweepRecord, TrialRecord

_TRAINING_KEYS = ("lr", "batch_size")


def describe(params: dict[str, Any]) -> str:
    """A compact architecture summary, e.g. ``C8k3s2 D16 L16 q5/6 sp0.5``."""
    parts = []
    for i in range(int(params.get("n_conv", 0))):
        pool = "p" if params.get(f"conv{i}_pool") else ""
        parts.append(
            f"C{params[f'conv{i}_filters']}k{params[f'conv{i}_kernel']}s{params[f'conv{i}_stride']}{pool}"
        )
    for prefix, count in (("dense", "n_dense"), ("hidden", "n_hidden")):
        parts.extend(f"D{params[f'{prefix}{i}_units']}" for i in range(int(params.get(count, 0))))
    if "latent" in params:
        parts.append(f"L{params['latent']}")
    if params.get("quantize"):
        parts.append(f"q{params.get('weight_bits')}/{params.get('act_bits')}")
    if float(params.get("sparsity", 0) or 0) > 0:
        parts.append(f"sp{float(params['sparsity']):.2f}")
    return " ".join(parts) or json.dumps({k: v for k, v in params.items() if k not in _TRAINING_KEYS})


def _note(trial: TrialRecord, on_front: set[int]) -> str:
    if trial.origin != "warm-start":
        return ""
    return "warm-start reference" + (" (on front)" if trial.id in on_front else " (dominated)")


@dataclass(frozen=True)
class FrontReport:
    sweep: SweepRecord
    objectives: list[str]
    front: list[TrialRecord]
    references: list[TrialRecord]
    completed: list[TrialRecord]
    hypervolume: float | None

    def rows(self) -> list[dict[str, Any]]:
        on_front = {t.id for t in self.front}
        shown = self.front + [t for t in self.references if t.id not in on_front]
        return [
            {
                "trial": t.number,
                **{name: t.results.get(name, math.nan) for name in self.objectives},
                "architecture": describe(t.params),
                "epochs": t.fidelity,
                "note": _note(t, on_front),
            }
            for t in shown
        ]

    def to_csv(self) -> str:
        rows = self.rows()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["trial", *self.objectives])
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()

    def to_json(self) -> str:
        return json.dumps(
            {
                "sweep": self.sweep.name,
                "objectives": self.sweep.objectives,
                "reference_point": self.sweep.reference_point,
                "hypervolume": self.hypervolume,
                "hypervolume_history": self.history(),
                "front": [
                    {**row, "params": t.params} for row, t in zip(self.rows(), self.front, strict=False)
                ],
                "references": [
                    {"trial": t.number, "params": t.params, "results": t.results} for t in self.references
                ],
            },
            indent=2,
        )

    def history(self) -> list[dict[str, Any]]:
        """Hypervolume after each completed trial, in completion order (normalised like ``hypervolume``)."""
        if not self.completed or self.sweep.reference_point is None:
            return []
        ordered = sorted(self.completed, key=lambda t: (t.finished_at is None, t.finished_at, t.number))
        points = [[t.results[n] for n in self.objectives] for t in ordered]
        directions = [o["direction"] for o in self.sweep.objectives]
        reference = self.sweep.reference_point
        volumes = hypervolume_history(points, directions, reference, scale=[abs(v) or 1.0 for v in reference])
        return [{"trial": t.number, "hypervolume": v} for t, v in zip(ordered, volumes, strict=True)]

    def plot(self, path: Path) -> None:
        """Quality (y) vs cost (x) of every completed trial, the front as a step line, references starred."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from hw_models import COST_QUANTITIES

        x_name = next((n for n in self.objectives if n in COST_QUANTITIES), self.objectives[-1])
        y_name = next(n for n in self.objectives if n != x_name)
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.scatter(
            [t.results[x_name] for t in self.completed],
            [t.results[y_name] for t in self.completed],
            s=14,
            c="0.7",
            label="completed trials",
        )
        front = sorted(self.front, key=lambda t: t.results[x_name])
        ax.step(
            [t.results[x_name] for t in front],
            [t.results[y_name] for t in front],
            where="post",
            marker="o",
            color="tab:blue",
            label="Pareto front",
        )
        for t in self.references:
            ax.scatter([t.results[x_name]], [t.results[y_name]], marker="*", s=220, c="tab:red", zorder=5)
            ax.annotate(
                "reference model",
                (t.results[x_name], t.results[y_name]),
                textcoords="offset points",
                xytext=(6, 6),
                color="tab:red",
            )
        ax.set_xscale("log")
        ax.set_xlabel(f"{x_name} (estimate)" if x_name in COST_QUANTITIES else x_name)
        ax.set_ylabel(y_name)
        ax.set_title(f"sweep {self.sweep.name}: {len(self.completed)} completed trials")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
        plt.close(fig)


def front_report(store: TrialSource, sweep: SweepRecord) -> FrontReport:
    """The front, its hypervolume and the warm-start references of ``sweep`` (trials loaded once)."""
    objectives = [o["name"] for o in sweep.objectives]
    completed = completed_search_trials(store, sweep)
    front, volume = front_of(completed, sweep)
    references = [t for t in completed if t.origin == "warm-start"]
    return FrontReport(sweep, objectives, front, references, completed, volume)
