"""Collapse detection: did a trained model learn anything, or does it output (nearly) the same image for
every input?

A collapsed ECON-T model predicts about the mean module whatever it is given; its EMD is then close to
that of the constant-output model (the training mean image predicted for every validation row). The
detector compares the trial's EMD with that baseline, computed on the same validation rows, and also
checks the spread of the (unit-normalised) outputs across rows, so a constant output that happens to
score a little better than the mean image is still caught.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Mapping
from typing import Literal

import numpy as np
import torch

from objectives._emd import emd_hex

#: A model whose EMD is at least this fraction of the constant-output model's EMD counts as collapsed
#: ("within 10 % of the constant-output EMD").
COLLAPSE_EMD_RATIO = 0.9
#: ... and so does one whose outputs vary across validation rows less than this fraction of the inputs'
#: variation (mean over cells of the per-cell std of the unit-normalised rows).
COLLAPSE_SPREAD_RATIO = 0.02

#: The metrics :func:`collapse_metrics` returns, with their directions.
COLLAPSE_METRICS: Mapping[str, Literal["minimize", "maximize"]] = {
    "collapsed": "minimize",  # 1.0 when collapsed, else 0.0
    "constant_emd": "minimize",  # EMD of the constant-output model on the same rows (a property of the data)
    "emd_ratio": "minimize",  # emd_mean / constant_emd
    "output_spread": "maximize",  # spread of the outputs across rows / spread of the inputs
}

# The constant-output EMD depends only on the data: cached by a digest of the arrays (a trial's final
# evaluation and every per-epoch rung evaluation of a subsample reuse it), the most recent few kept.
_CONSTANT_EMD: OrderedDict[str, float] = OrderedDict()
_CACHE_SIZE = 8


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha1()
    for array in arrays:
        contiguous = np.ascontiguousarray(array)
        h.update(str((contiguous.shape, contiguous.dtype.str)).encode())
        h.update(contiguous.tobytes())
    return h.hexdigest()


def _unit_rows(cells: np.ndarray) -> np.ndarray:
    sums = cells.sum(axis=1, keepdims=True)
    return np.divide(cells, sums, out=np.zeros_like(cells), where=sums > 0)


def row_spread(cells: np.ndarray) -> float:
    """Mean over cells of the std across rows of the unit-normalised (N, 48) ``cells`` (0 for a constant
    output; rows summing to 0 count as all zeros)."""
    return float(_unit_rows(np.asarray(cells, dtype=np.float64)).std(axis=0).mean())


def constant_output_emd(train_cells: np.ndarray, val_raw: np.ndarray) -> float:
    """Mean EMD between ``val_raw`` rows and the mean of the (N, 48) ``train_cells`` predicted for every row."""
    mean = np.asarray(train_cells, dtype=np.float64).mean(axis=0, keepdims=True)
    return emd_hex(val_raw, np.repeat(mean, np.asarray(val_raw).shape[0], axis=0)).mean


def collapse_metrics(
    emd_mean: float,
    pred_cells: np.ndarray,
    val_raw: np.ndarray,
    train_cells: np.ndarray | torch.Tensor,
) -> dict[str, float]:
    """``collapsed`` (0/1), ``constant_emd``, ``emd_ratio`` and ``output_spread`` of a trained model.

    ``emd_mean`` is the model's mean EMD on ``val_raw`` (N, 48), ``pred_cells`` its (N, 48) outputs
    (negatives already clipped), ``train_cells`` the training inputs in CALQ order, whose mean image is
    the constant-output model. Collapsed: ``emd_mean >= COLLAPSE_EMD_RATIO * constant_emd`` (an infinite
    EMD, every output summing to 0, included) or ``output_spread < COLLAPSE_SPREAD_RATIO``. The
    constant-output EMD is computed once per distinct (val_raw, train_cells) pair.
    """
    train = train_cells.detach().double().numpy() if isinstance(train_cells, torch.Tensor) else train_cells
    key = _digest(np.asarray(val_raw), np.asarray(train))
    constant = _CONSTANT_EMD.get(key)
    if constant is None:
        constant = constant_output_emd(train, val_raw)
        _CONSTANT_EMD[key] = constant
        while len(_CONSTANT_EMD) > _CACHE_SIZE:
            _CONSTANT_EMD.popitem(last=False)
    input_spread = row_spread(val_raw)
    spread = row_spread(pred_cells) / input_spread if input_spread > 0 else 0.0
    ratio = emd_mean / constant if constant > 0 else math.inf
    collapsed = not (ratio < COLLAPSE_EMD_RATIO) or spread < COLLAPSE_SPREAD_RATIO
    return {
        "collapsed": float(collapsed),
        "constant_emd": float(constant),
        "emd_ratio": float(ratio),
        "output_spread": float(spread),
    }
