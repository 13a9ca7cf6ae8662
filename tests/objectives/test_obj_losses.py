"""Telescope loss and charge-weighted MSE against straightforward loop implementations written here."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from objectives import ObjectivesError, charge_weighted_mse, telescope_loss, to_8x8

# The spec's 36 super-cells, transcribed independently of the implementation.
SPEC_SUPER_CELLS = [
    (0, 1, 4, 5, "3/8"), (2, 3, 6, 7, "1/3"), (8, 9, 12, 13, "9/16"), (10, 11, 14, 15, "3/8"),
    (16, 17, 20, 21, "3/8"), (18, 19, 22, 23, "1/3"), (24, 25, 28, 29, "9/16"), (26, 27, 30, 31, "3/8"),
    (32, 33, 36, 37, "3/8"), (34, 35, 38, 39, "1/3"), (40, 41, 44, 45, "9/16"), (42, 43, 46, 47, "3/8"),
    (4, 5, 8, 9, "3/8"), (6, 7, 10, 11, "1/4"), (20, 21, 24, 25, "3/8"), (22, 23, 26, 27, "1/4"),
    (36, 37, 40, 41, "3/8"), (38, 39, 42, 43, "1/4"),
    (1, 2, 5, 6, "1/4"), (9, 10, 13, 14, "3/8"), (17, 18, 21, 22, "1/4"), (25, 26, 29, 30, "3/8"),
    (33, 34, 37, 38, "1/4"), (41, 42, 45, 46, "3/8"),
    (5, 6, 9, 10, "1/4"), (21, 22, 25, 26, "1/4"), (37, 38, 41, 42, "1/4"),
    (0, 1, 27, 31, "3/8"), (1, 2, 23, 27, "1/4"), (2, 3, 19, 23, "5/12"), (3, 7, 34, 35, "5/12"),
    (7, 11, 33, 34, "1/4"), (11, 15, 32, 33, "3/8"), (16, 17, 47, 43, "3/8"), (17, 18, 43, 39, "1/4"),
    (18, 19, 39, 35, "5/12"),
]  # fmt: skip

# The spec's 8x8 picture (CALQ index per pixel, -1 masked), to read cells without the library's map.
SPEC_IMAGE = [
    [28, 29, 30, 31, 0, 4, 8, 12],
    [24, 25, 26, 27, 1, 5, 9, 13],
    [20, 21, 22, 23, 2, 6, 10, 14],
    [16, 17, 18, 19, 3, 7, 11, 15],
    [47, 43, 39, 35, -1, -1, -1, -1],
    [46, 42, 38, 34, -1, -1, -1, -1],
    [45, 41, 37, 33, -1, -1, -1, -1],
    [44, 40, 36, 32, -1, -1, -1, -1],
]


def loop_cwmse(pred: list[list[float]], target: list[list[float]]) -> float:
    terms = [
        (t - p) ** 2 * max(t, p)
        for prow, trow in zip(pred, target, strict=True)
        for p, t in zip(prow, trow, strict=True)
    ]
    return sum(terms) / len(terms)


def cells_of(image: np.ndarray) -> list[list[float]]:
    rows = []
    for sample in image:
        cells = [0.0] * 48
        for r in range(8):
            for c in range(8):
                if SPEC_IMAGE[r][c] >= 0:
                    cells[SPEC_IMAGE[r][c]] = float(sample[0, r, c])
        rows.append(cells)
    return rows


def loop_telescope(pred_img: np.ndarray, target_img: np.ndarray) -> float:
    pred, target = cells_of(pred_img), cells_of(target_img)
    l1 = loop_cwmse(pred, target)

    def super_cells(rows: list[list[float]]) -> list[list[float]]:
        return [
            [float(Fraction(w)) * sum(row[i] for i in cells) for *cells, w in SPEC_SUPER_CELLS]
            for row in rows
        ]

    def blocks(rows: list[list[float]]) -> list[list[float]]:
        return [[sum(row[16 * b : 16 * b + 16]) for b in range(3)] for row in rows]

    return (
        4 * l1
        + 2 * loop_cwmse(super_cells(pred), super_cells(target))
        + loop_cwmse(blocks(pred), blocks(target))
    )


def test_super_cell_weights_sum_as_the_spec_says() -> None:
    assert sum(Fraction(w) for *_, w in SPEC_SUPER_CELLS) == Fraction(125625, 10000)


def test_telescope_matches_the_loop_reference() -> None:
    rng = np.random.default_rng(0)
    target = to_8x8(rng.random((7, 48)) * (rng.random((7, 48)) < 0.3))
    pred = rng.random((7, 1, 8, 8))  # values in the masked quadrant must not matter
    value = telescope_loss(torch.tensor(pred), torch.tensor(target))
    assert value.item() == pytest.approx(loop_telescope(pred, target), rel=1e-12)


def test_telescope_is_zero_for_a_perfect_reconstruction_and_ignores_the_mask() -> None:
    target = to_8x8(np.random.default_rng(1).random((4, 48)))
    pred = target.copy()
    pred[:, 0, 4:, 4:] = 9.0
    assert telescope_loss(torch.tensor(pred), torch.tensor(target)).item() == 0.0


def test_telescope_gradients_flow_to_every_cell() -> None:
    rng = np.random.default_rng(2)
    pred = torch.tensor(rng.random((3, 1, 8, 8)), requires_grad=True)
    target = torch.tensor(to_8x8(rng.random((3, 48))))
    telescope_loss(pred, target).backward()
    assert pred.grad is not None
    grad = pred.grad.numpy()[:, 0]
    assert (grad[:, :4, :].reshape(3, -1) != 0).all() and (grad[:, 4:, :4].reshape(3, -1) != 0).all()
    assert not grad[:, 4:, 4:].any()  # the masked quadrant gets no gradient


def test_charge_weighted_mse_matches_the_loop() -> None:
    rng = np.random.default_rng(4)
    pred, target = rng.random((5, 6)), rng.random((5, 6))
    value = charge_weighted_mse(torch.tensor(pred), torch.tensor(target)).item()
    assert value == pytest.approx(loop_cwmse(pred.tolist(), target.tolist()), rel=1e-12)


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ObjectivesError, match=r"shapes differ: \(2, 48\) vs \(3, 48\)"):
        charge_weighted_mse(torch.zeros(2, 48), torch.zeros(3, 48))
    with pytest.raises(ObjectivesError, match=r"must have shape \(N, 1, 8, 8\)"):
        telescope_loss(torch.zeros(2, 48), torch.zeros(2, 48))
