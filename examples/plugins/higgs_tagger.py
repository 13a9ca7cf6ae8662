"""An example plugin task: a 39-feature boosted-Higgs jet tagger (the AutoPruner study's bench-test).

A fully connected 39-64-64-64-64-1 classifier on a synthetic data set: signal jets (H -> bb) and QCD
background jets, 39 standardised features each, the signal shifted by a fixed random direction so the two
classes overlap (a ~0.9 AUC problem). Use it from a sweep config:

    task: {plugin: examples/plugins/higgs_tagger.py:HiggsTagger, rows: 4000, val_rows: 1000}

It uses only the public API: `objectives.Task`, `objectives.TaskData`, the built-in `dense_net` family.
Rows are (N, 40) float32: 39 features then the label (1 = signal) in the last column; files are .npy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import nn

import spaces
from objectives import DataError, DivergedError, ObjectivesError, Task, TaskData

FEATURES = 39


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (the Mann-Whitney statistic; ties count one half)."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores):  # average ranks of ties
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    positives = labels == 1
    n_pos, n_neg = positives.sum(), (~positives).sum()
    if n_pos == 0 or n_neg == 0:
        return 0.5
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


class HiggsTagger(Task):
    name = "higgs_tagger"
    input_shape = (FEATURES,)
    input_bits = 8
    input_signed = True
    model_family = "dense_net"  # built-in: hidden Linear+ReLU layers -> `outputs` logits, all on chip
    losses = MappingProxyType({"bce": nn.functional.binary_cross_entropy_with_logits})
    default_loss = "bce"
    metric_directions = MappingProxyType({"auc": "maximize", "accuracy": "maximize", "val_loss": "minimize"})
    primary_metric = "auc"
    preset = MappingProxyType(
        {"n_hidden": 4, **{f"hidden{i}_units": 64 for i in range(4)}, "lr": 1e-3, "batch_size": 256}
    )

    def build_model(self, config: Mapping[str, Any]) -> spaces.Autoencoder:
        return spaces.build_model(self.model_family, {**config, "outputs": 1}, self.model_input)

    def on_chip(self, model: spaces.Autoencoder) -> nn.Module:
        return model.encoder  # dense_net: the whole network

    def read_data(self, path: str | os.PathLike[str], *, max_rows: int | None = None) -> np.ndarray:
        try:
            rows = np.load(path, allow_pickle=False)[:max_rows].astype(np.float32)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a readable .npy file: {exc}") from None
        if rows.ndim != 2 or rows.shape[1] != FEATURES + 1:
            raise DataError(f"{path}: expected {FEATURES + 1} columns (features + label), got {rows.shape}")
        return rows

    def synthesize(self, rows: int, *, seed: int, **options: float) -> np.ndarray:
        self.check_synth_options(options)
        rng = np.random.default_rng(seed)
        direction = np.random.default_rng(39).normal(size=FEATURES)  # fixed: the same physics every seed
        direction *= 1.8 / np.linalg.norm(direction)
        labels = rng.random(rows) < 0.5
        features = rng.normal(size=(rows, FEATURES)) + np.outer(labels, direction)
        return np.column_stack((features, labels)).astype(np.float32)

    def prepare(
        self,
        source: str | os.PathLike[str] = "synthetic",
        *,
        rows: int,
        seed: int,
        val_rows: int | None = None,
    ) -> TaskData:
        if rows < 2:
            raise ObjectivesError(f"rows must be >= 2, got {rows}")
        _, raw = self.raw_rows(source, rows=rows, seed=seed)
        order = np.random.default_rng(seed).permutation(raw.shape[0])
        cut = int(0.8 * raw.shape[0])
        train, val = order[:cut], order[cut:][:val_rows]
        x = torch.from_numpy(raw[:, :FEATURES])
        y = torch.from_numpy(raw[:, FEATURES:])
        return TaskData(
            task=self.name,
            source=str(source),
            train_x=x[train],
            val_x=x[val],
            test_x=x[:0],
            val_raw=raw[val],
            val_scale=np.ones(val.size, dtype=np.float32),
            train_y=y[train],
            val_y=y[val],
        )

    def evaluate(self, model: nn.Module, data: TaskData) -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            logits = model(data.val_x)
        if not torch.isfinite(logits).all():
            raise DivergedError("the tagger produced NaN or infinite logits")
        scores = logits[:, 0].double().numpy()
        labels = data.val_raw[:, FEATURES]
        return {
            "auc": auc(scores, labels),
            "accuracy": float(((scores > 0) == (labels == 1)).mean()),
            "val_loss": float(self.loss(logits, data.val_targets)),
        }
