"""The waveform task: 48-sample fADC250 pulses, autoencoded by a dense network.

Registered at import through :func:`register_task`, exactly as a plugin task registers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from types import MappingProxyType

import numpy as np
import torch
from torch import nn

from objectives._check import FileSummary, check_file, looks_like
from objectives._io import load_waveform, write_dataset
from objectives._losses import charge_weighted_mse
from objectives._pulse import emd_1d, integral_error
from objectives._registry import register_task
from objectives._synth import synth_waveform
from objectives._tasks import SYNTHETIC, Task, TaskData, check_finite, check_prepare_args, predict, split


class WaveformTask(Task):
    name = "waveform"
    input_shape = (48,)
    # The fADC250 digitises at 12 bits; pulses are quantized signed (only charges are known non-negative).
    input_bits = 12
    input_signed = True
    model_family = "dense_autoencoder"
    losses = MappingProxyType({"mse": nn.functional.mse_loss, "cwmse": charge_weighted_mse})
    default_loss = "mse"
    metric_directions = MappingProxyType(
        {
            "integral_error_mean": "minimize",  # signed bias, informative; optimise integral_error_abs
            "integral_error_std": "minimize",
            "integral_error_abs": "minimize",
            "emd1d_mean": "minimize",
            "mse": "minimize",
            "val_loss": "minimize",
        }
    )
    primary_metric = "emd1d_mean"
    preset = "waveform_baseline"
    default_space = "waveform"

    def read_data(self, path: str | os.PathLike[str], *, max_rows: int | None = None) -> np.ndarray:
        """(N, 48) float32 pulses from a CSV (48 samples, or time + 48) or .npy file."""
        return load_waveform(path, max_rows=max_rows)

    def synthesize(self, rows: int, *, seed: int, **options: float) -> np.ndarray:
        self.check_synth_options(options)
        return synth_waveform(rows, seed=seed)

    def write_data(self, rows: np.ndarray | Iterable[np.ndarray], path: str | os.PathLike[str]) -> int:
        return write_dataset(rows, path, kind="waveform")

    def check_data(self, path: str | os.PathLike[str]) -> FileSummary:
        return check_file(path, kind="waveform")

    def recognizes(self, path: str | os.PathLike[str]) -> bool:
        return looks_like(path, "waveform")

    def prepare(
        self, source: str | os.PathLike[str] = SYNTHETIC, *, rows: int, seed: int, val_rows: int | None = None
    ) -> TaskData:
        """Pulses (not normalised: the dumps are already scaled), split 48/15/12/25 % by a seeded permutation.

        The reference's two validation parts (15 % and 12 %) both go to ``val_x``, which serves early
        stopping and the final metrics; the last 25 % is ``test_x``. ``val_rows`` keeps the first rows of
        the validation part. Raises ObjectivesError for rows/val_rows < 1 or too few rows, DataError for
        an unusable file.
        """
        check_prepare_args(rows, val_rows)
        label, raw = self.raw_rows(source, rows=rows, seed=seed)
        train, val, second_val, test = split(raw.shape[0], (0.48, 0.15, 0.12, 0.25), seed, self.name)
        val = np.concatenate((val, second_val))[:val_rows]
        pulses = torch.from_numpy(raw)
        return TaskData(
            task=self.name,
            source=label,
            train_x=pulses[train],
            val_x=pulses[val],
            test_x=pulses[test],
            val_raw=raw[val],
            val_scale=np.ones(val.size, dtype=np.float32),
        )

    def evaluate(self, model: nn.Module, data: TaskData) -> dict[str, float]:
        """Integral error in % (mean, std, |mean|), mean 1-D EMD, MSE and ``val_loss`` on the validation set.

        Negative outputs are clipped to 0 for the 1-D EMD only; rows whose output sums to 0 are left out of
        ``emd1d_mean`` (+inf when no row remains). Raises DivergedError when the model outputs NaN or inf.
        """
        pred = predict(model, data.val_x)
        check_finite(pred)
        outputs = pred.double().numpy()
        error_mean, error_std = integral_error(data.val_raw, outputs)
        distances = emd_1d(data.val_raw, np.clip(outputs, 0.0, None))
        valid = distances[~np.isnan(distances)]
        return {
            "integral_error_mean": error_mean,
            "integral_error_std": error_std,
            "integral_error_abs": abs(error_mean),
            "emd1d_mean": float(valid.mean()) if valid.size else math.inf,
            "mse": float(nn.functional.mse_loss(pred, data.val_x)),
            "val_loss": float(self.loss(pred, data.val_x)),
        }


register_task(WaveformTask.name, WaveformTask)
