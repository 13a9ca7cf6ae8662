"""Differentiable training losses: charge-weighted MSE and the ECON-T telescope loss."""

from __future__ import annotations

import torch

from objectives._errors import ObjectivesError
from objectives._geometry import N_CELLS, from_8x8

# 2x2 super-cells (four CALQ cells and a weight) of the telescope loss; the weights sum to 12.5625.
_SUPER_CELLS_2X2: tuple[tuple[int, int, int, int, float], ...] = (
    (0, 1, 4, 5, 0.375), (2, 3, 6, 7, 1 / 3), (8, 9, 12, 13, 0.5625), (10, 11, 14, 15, 0.375),
    (16, 17, 20, 21, 0.375), (18, 19, 22, 23, 1 / 3), (24, 25, 28, 29, 0.5625), (26, 27, 30, 31, 0.375),
    (32, 33, 36, 37, 0.375), (34, 35, 38, 39, 1 / 3), (40, 41, 44, 45, 0.5625), (42, 43, 46, 47, 0.375),
    (4, 5, 8, 9, 0.375), (6, 7, 10, 11, 0.25), (20, 21, 24, 25, 0.375), (22, 23, 26, 27, 0.25),
    (36, 37, 40, 41, 0.375), (38, 39, 42, 43, 0.25),
    (1, 2, 5, 6, 0.25), (9, 10, 13, 14, 0.375), (17, 18, 21, 22, 0.25), (25, 26, 29, 30, 0.375),
    (33, 34, 37, 38, 0.25), (41, 42, 45, 46, 0.375),
    (5, 6, 9, 10, 0.25), (21, 22, 25, 26, 0.25), (37, 38, 41, 42, 0.25),
    (0, 1, 27, 31, 0.375), (1, 2, 23, 27, 0.25), (2, 3, 19, 23, 5 / 12), (3, 7, 34, 35, 5 / 12),
    (7, 11, 33, 34, 0.25), (11, 15, 32, 33, 0.375), (16, 17, 47, 43, 0.375), (17, 18, 43, 39, 0.25),
    (18, 19, 39, 35, 5 / 12),
)  # fmt: skip


def _super_cell_matrices() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(48, 36) plain 2x2 sums, their (36,) weights and (48, 3) sums of the three 16-cell 4x4 blocks."""
    two_by_two = torch.zeros(N_CELLS, len(_SUPER_CELLS_2X2), dtype=torch.float64)
    weights = torch.zeros(len(_SUPER_CELLS_2X2), dtype=torch.float64)
    for column, (*cells, weight) in enumerate(_SUPER_CELLS_2X2):
        two_by_two[cells, column] = 1.0
        weights[column] = weight
    four_by_four = torch.zeros(N_CELLS, 3, dtype=torch.float64)
    for block in range(3):
        four_by_four[16 * block : 16 * (block + 1), block] = 1.0
    return two_by_two, weights, four_by_four


_TWO_BY_TWO, _TWO_BY_TWO_WEIGHTS, _FOUR_BY_FOUR = _super_cell_matrices()


def charge_weighted_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean((target - pred)**2 * max(target, pred))`` over all elements: errors on charged cells count more.

    Differentiable in ``pred``. Raises ObjectivesError when the shapes differ.
    """
    if pred.shape != target.shape:
        raise ObjectivesError(
            f"prediction and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}"
        )
    return ((target - pred) ** 2 * torch.maximum(target, pred)).mean()


def telescope_loss(pred_img: torch.Tensor, target_img: torch.Tensor) -> torch.Tensor:
    """The ECON-T telescope loss ``4*L1 + 2*L2 + L3`` of (N, 1, 8, 8) images (mapped to CALQ order first).

    L1 is the :func:`charge_weighted_mse` of the 48 cells; L2 is ``mean((t36 - p36)**2 * max(t36, p36) * W)``
    with ``t36``/``p36`` the plain sums of the four cells of each of the 36 overlapping 2x2 super-cells and
    ``W`` that super-cell's weight (the weight multiplies the loss term, as in the original ECON-T code, not
    the sums); L3 is the charge-weighted MSE of the sums of the three 16-cell 4x4 blocks. Differentiable in
    ``pred_img``; the masked image quadrant does not enter. Raises ObjectivesError for other shapes.
    """
    if pred_img.shape != target_img.shape:
        raise ObjectivesError(
            f"prediction and target shapes differ: {tuple(pred_img.shape)} vs {tuple(target_img.shape)}"
        )
    pred = from_8x8(pred_img)
    target = from_8x8(target_img)
    two_by_two = _TWO_BY_TWO.to(dtype=pred.dtype, device=pred.device)
    weights = _TWO_BY_TWO_WEIGHTS.to(dtype=pred.dtype, device=pred.device)
    four_by_four = _FOUR_BY_FOUR.to(dtype=pred.dtype, device=pred.device)
    cells = charge_weighted_mse(pred, target)
    p36, t36 = pred @ two_by_two, target @ two_by_two
    pairs = ((t36 - p36) ** 2 * torch.maximum(t36, p36) * weights).mean()
    blocks = charge_weighted_mse(pred @ four_by_four, target @ four_by_four)
    return 4 * cells + 2 * pairs + blocks
