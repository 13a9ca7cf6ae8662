"""The ECON-T task: 48 trigger-cell charges of one HGCAL module, autoencoded as an 8x8 image.

Registered at import through :func:`register_task`, exactly as a plugin task registers.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from types import MappingProxyType

import numpy as np
import torch
from torch import nn

from objectives._check import FileSummary, check_file, looks_like
from objectives._collapse import COLLAPSE_METRICS, collapse_metrics
from objectives._emd import emd_hex
from objectives._geometry import from_8x8, to_8x8
from objectives._io import load_econt, write_dataset
from objectives._losses import charge_weighted_mse, telescope_loss
from objectives._registry import register_task
from objectives._synth import synth_econt
from objectives._tasks import (
    SYNTHETIC,
    LossFunction,
    Task,
    TaskData,
    check_finite,
    check_prepare_args,
    predict,
    split,
)
from objectives._transform import normalize


def _on_cells(loss: LossFunction) -> LossFunction:
    """``loss`` on the 48 cells rather than the 64 pixels (the 16 padding pixels carry no charge)."""

    def on_cells(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return loss(from_8x8(pred), from_8x8(target))

    return on_cells


class EcontTask(Task):
    name = "econt"
    input_shape = (1, 8, 8)
    # The reference ECON-T QAT model used 10-bit inputs; charges are never negative.
    input_bits = 10
    input_signed = False
    model_family = "conv_autoencoder"
    losses = MappingProxyType(
        {
            "telescope": telescope_loss,
            "cwmse": _on_cells(charge_weighted_mse),
            "mse": _on_cells(nn.functional.mse_loss),
        }
    )
    default_loss = "telescope"
    metric_directions = MappingProxyType(
        {
            "emd_mean": "minimize",
            "emd_std": "minimize",
            "emd_median": "minimize",
            "emd_p16": "minimize",
            "emd_p84": "minimize",
            "emd_sentinels": "minimize",
            "val_loss": "minimize",
            **COLLAPSE_METRICS,  # collapse detector (objectives/_collapse.py)
        }
    )
    primary_metric = "emd_mean"
    preset = "econt_baseline"
    default_space = "econt"
    synth_options = MappingProxyType({"pileup": "mean pile-up charge per cell, ADC counts; default 0"})

    def distill_loss(self, student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
        """The task's loss to the teacher's reconstruction, clipped at 0: charges are not negative, and a
        charge weight max(target, prediction) would turn negative on a teacher's small negative outputs.
        The losses read the 48 cells only (padding pixels are not charge)."""
        return self.loss(student, teacher.clamp_min(0.0))

    def read_data(self, path: str | os.PathLike[str], *, max_rows: int | None = None) -> np.ndarray:
        """(N, 48) float32 charges in CALQ order from a CSV (public or with header) or .npy file."""
        return load_econt(path, max_rows=max_rows)

    def synthesize(self, rows: int, *, seed: int, **options: float) -> np.ndarray:
        self.check_synth_options(options)
        return synth_econt(rows, seed=seed, pileup=float(options.get("pileup", 0.0)))

    def write_data(self, rows: np.ndarray | Iterable[np.ndarray], path: str | os.PathLike[str]) -> int:
        return write_dataset(rows, path, kind="econt")

    def check_data(self, path: str | os.PathLike[str]) -> FileSummary:
        return check_file(path, kind="econt")

    def recognizes(self, path: str | os.PathLike[str]) -> bool:
        return looks_like(path, "econt")

    def prepare(
        self, source: str | os.PathLike[str] = SYNTHETIC, *, rows: int, seed: int, val_rows: int | None = None
    ) -> TaskData:
        """Modules normalised per row (sum/2**floor(log2 sum)) as 8x8 images, split 80/20 train/val.

        The split is a seeded permutation; ``val_rows`` keeps only the first rows of the (already random)
        validation part, so per-trial EMD stays cheap. There is no test part (``test_x`` has 0 rows).
        Raises ObjectivesError for rows/val_rows < 1 or too few rows for both parts, DataError for an
        unusable file.
        """
        check_prepare_args(rows, val_rows)
        label, raw = self.raw_rows(source, rows=rows, seed=seed)
        train, val = split(raw.shape[0], (0.8, 0.2), seed, self.name)
        val = val[:val_rows]
        normalised, scale = normalize(raw, "sumlog2")
        images = torch.from_numpy(to_8x8(normalised.astype(np.float32)))
        return TaskData(
            task=self.name,
            source=label,
            train_x=images[train],
            val_x=images[val],
            test_x=images[:0],
            val_raw=raw[val],
            val_scale=scale[val],
        )

    def evaluate(self, model: nn.Module, data: TaskData) -> dict[str, float]:
        """EMD summary (``emd_mean/std/median/p16/p84/sentinels``), ``val_loss`` and the collapse detector's
        ``collapsed`` (0/1), ``constant_emd``, ``emd_ratio``, ``output_spread`` on the validation set.

        Negative outputs carry no charge and are clipped to 0 before the EMD. Raises DivergedError when the
        model outputs NaN or inf.
        """
        pred = predict(model, data.val_x)
        check_finite(pred)
        cells = from_8x8(pred).clamp_min(0.0).double().numpy()
        metrics = emd_hex(data.val_raw, cells).as_dict()
        metrics["val_loss"] = float(self.loss(pred, data.val_x))
        metrics.update(collapse_metrics(metrics["emd_mean"], cells, data.val_raw, from_8x8(data.train_x)))
        return metrics


register_task(EcontTask.name, EcontTask)
