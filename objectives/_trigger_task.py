"""The muon-trigger task (ATLAS muon-spectrometer level-0 seed study): hit images -> pT, charge, presence.

A supervised task on the public Task API: a `strip_cnn` whose whole network goes on chip, three outputs
per event (``[0]`` the leading muon's curvature ``PT_MIN / pT``, ``[1]`` the charge logit (positive: +1),
``[2]`` the "any muon" logit). Registered at import through :func:`register_task` (``trigger``: 4 layers;
``trigger9``: 9 layers), exactly as a plugin task registers.

Metrics on the validation events (a trigger *fires* when the presence probability exceeds 0.5 and the
predicted pT reaches ``PT_THRESHOLD`` = 20 GeV):

- ``pt_resolution``: RMS of (pT_pred - pT) / pT over events with a muon, pT_pred = PT_MIN / curvature
  with the curvature clipped to [PT_MIN/200, 2] (pT_pred between 1.5 and 200 GeV);
- ``charge_accuracy``: fraction of events with a muon whose charge sign is right;
- ``trigger_efficiency``: fraction of events with a leading muon above the threshold where it fires;
- ``fake_rate``: fraction of noise-only events where it fires (the study asks for < 0.002);
- ``val_loss``. A metric without events to count (no muon, or no noise-only event) is 0.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import nn

import spaces
from objectives._check import FileSummary
from objectives._registry import register_task
from objectives._tasks import (
    SYNTHETIC,
    Task,
    TaskData,
    check_finite,
    check_prepare_args,
    predict,
    split,
    summarize,
)
from objectives._trigger import LABELS, PT_MIN, STRIPS, load_trigger, synth_trigger, write_trigger

PT_THRESHOLD = 20.0
_CURVATURE_RANGE = (PT_MIN / 200.0, 2.0)


def targets(raw: np.ndarray) -> torch.Tensor:
    """(N, 3) training targets of events: curvature PT_MIN/pT (0 without muon), charge in {0, 1}, presence."""
    pt, charge, count = raw[:, 0], raw[:, 1], raw[:, 2]
    present = count > 0
    curvature = np.where(present, PT_MIN / np.where(present, pt, 1.0), 0.0)
    return torch.from_numpy(np.stack((curvature, charge > 0, present), axis=1).astype(np.float32))


def trigger_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over events: (curvature MSE x 10 + charge BCE) on events with a muon, + presence BCE on all."""
    present = target[:, 2]
    bce = nn.functional.binary_cross_entropy_with_logits
    curvature = (pred[:, 0] - target[:, 0]) ** 2 * 10.0
    charge = bce(pred[:, 1], target[:, 1], reduction="none")
    presence = bce(pred[:, 2], present, reduction="none")
    return ((curvature + charge) * present + presence).mean()


def trigger_distill_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean over events: (curvature MSE x 10 + T^2 KL of the softened charge logits), weighted by the
    teacher's muon probability (its pT and charge mean nothing where it sees no muon), + T^2 KL of the
    softened presence logits. Each KL is that of two Bernoulli distributions, sigmoid(teacher / T) to
    sigmoid(student / T); the T^2 keeps the gradients' scale independent of T (Hinton et al. 2015)."""
    bce = nn.functional.binary_cross_entropy_with_logits

    def softened_kl(column: int) -> torch.Tensor:
        soft = torch.sigmoid(teacher[:, column] / temperature)
        cross = bce(student[:, column] / temperature, soft, reduction="none")
        entropy = bce(teacher[:, column] / temperature, soft, reduction="none")
        return (cross - entropy) * temperature**2

    present = torch.sigmoid(teacher[:, 2])
    curvature = (student[:, 0] - teacher[:, 0]) ** 2 * 10.0
    return ((curvature + softened_kl(1)) * present + softened_kl(2)).mean()


def trigger_metrics(pred: torch.Tensor, raw: np.ndarray, threshold: float = PT_THRESHOLD) -> dict[str, float]:
    """The four physics metrics of predictions ``pred`` (N, 3) against events ``raw`` (module docstring)."""
    out = pred.double().numpy()
    pt, charge, count = raw[:, 0].astype(np.float64), raw[:, 1], raw[:, 2]
    pt_pred = PT_MIN / np.clip(out[:, 0], *_CURVATURE_RANGE)
    fires = (out[:, 2] > 0.0) & (pt_pred >= threshold)
    muon, empty, above = count > 0, count == 0, (count > 0) & (pt >= threshold)

    def share(mask: np.ndarray, hit: np.ndarray) -> float:
        return float(hit[mask].mean()) if mask.any() else 0.0

    relative = (pt_pred[muon] - pt[muon]) / pt[muon]
    return {
        "pt_resolution": float(math.sqrt(np.mean(relative**2))) if muon.any() else 0.0,
        "charge_accuracy": share(muon, np.sign(out[:, 1]) == charge),
        "trigger_efficiency": share(above, fires),
        "fake_rate": share(empty, fires),
    }


class TriggerTask(Task):
    name = "trigger"
    layers = 4
    input_shape = (1, 4, STRIPS)
    input_bits = 1  # black-and-white hits
    input_signed = False
    model_family = "strip_cnn"
    outputs = 3
    losses = MappingProxyType({"trigger": trigger_loss})
    default_loss = "trigger"
    metric_directions = MappingProxyType(
        {
            "pt_resolution": "minimize",
            "charge_accuracy": "maximize",
            "trigger_efficiency": "maximize",
            "fake_rate": "minimize",
            "val_loss": "minimize",
        }
    )
    primary_metric = "pt_resolution"
    preset = "trigger_baseline"
    default_space = "trigger"
    synth_options = MappingProxyType(
        {
            "occupancy": "noise hits per strip (probability), default 0.005",
            "efficiency": "per-layer detection efficiency of a muon, default 0.95",
            "empty_fraction": "share of noise-only events, default 0.30",
        }
    )

    def build_model(self, config: Any) -> spaces.Autoencoder:
        """A `strip_cnn` with 3 outputs; ``model.encoder`` is the whole network."""
        return spaces.build_model(self.model_family, {**config, "outputs": self.outputs}, self.model_input)

    def on_chip(self, model: spaces.Autoencoder) -> nn.Module:
        """All of it: the whole network runs on chip (``model.encoder`` is the full network)."""
        return model.encoder

    def distill_loss(self, student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
        """Soft targets: :func:`trigger_distill_loss`."""
        return trigger_distill_loss(student, teacher, temperature)

    def read_data(self, path: str | os.PathLike[str], *, max_rows: int | None = None) -> np.ndarray:
        return load_trigger(path, layers=self.layers, max_rows=max_rows)

    def synthesize(self, rows: int, *, seed: int, **options: float) -> np.ndarray:
        self.check_synth_options(options)
        return synth_trigger(rows, seed=seed, layers=self.layers, **options)  # type: ignore[arg-type]

    def write_data(self, rows: np.ndarray | Iterable[np.ndarray], path: str | os.PathLike[str]) -> int:
        return write_trigger(rows, path, layers=self.layers)

    def check_data(self, path: str | os.PathLike[str]) -> FileSummary:
        """Every event validated (see `objectives._trigger.load_trigger`); statistics over the hits."""
        summary = summarize(path, self.name, self.read_data(path)[:, len(LABELS) :])
        header = False
        if summary.format == "csv":
            with Path(path).open() as stream:
                header = stream.read(len(LABELS[0]) + 1) == f"{LABELS[0]},"
        return dataclasses.replace(summary, columns=summary.columns + len(LABELS), header=header)

    def recognizes(self, path: str | os.PathLike[str]) -> bool:
        try:
            self.read_data(path, max_rows=2)
        except Exception:
            return False
        return True

    def prepare(
        self, source: str | os.PathLike[str] = SYNTHETIC, *, rows: int, seed: int, val_rows: int | None = None
    ) -> TaskData:
        """Events as (N, 1, layers, 384) images with (N, 3) targets, split 80/20 by a seeded permutation."""
        check_prepare_args(rows, val_rows)
        label, raw = self.raw_rows(source, rows=rows, seed=seed)
        train, val = split(raw.shape[0], (0.8, 0.2), seed, self.name)
        val = val[:val_rows]
        images = torch.from_numpy(np.ascontiguousarray(raw[:, len(LABELS) :])).reshape(-1, *self.input_shape)
        y = targets(raw)
        return TaskData(
            task=self.name,
            source=label,
            train_x=images[train],
            val_x=images[val],
            test_x=images[:0],
            val_raw=raw[val],
            val_scale=np.ones(val.size, dtype=np.float32),
            train_y=y[train],
            val_y=y[val],
            test_y=y[:0],
        )

    def evaluate(self, model: nn.Module, data: TaskData) -> dict[str, float]:
        """pT resolution, charge accuracy, trigger efficiency, fake rate and ``val_loss``; DivergedError on
        NaN/inf outputs."""
        pred = predict(model, data.val_x)
        check_finite(pred)
        metrics = trigger_metrics(pred, data.val_raw)
        metrics["val_loss"] = float(self.loss(pred, data.val_targets))
        return metrics


class Trigger9Task(TriggerTask):
    name = "trigger9"
    layers = 9
    input_shape = (1, 9, STRIPS)


register_task(TriggerTask.name, TriggerTask)
register_task(Trigger9Task.name, Trigger9Task)
