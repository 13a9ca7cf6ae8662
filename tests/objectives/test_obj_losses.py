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

    # L2: the weight multiplies the charge-weighted squared error of the plain 4-cell sums.
    l2_terms = []
    for prow, trow in zip(pred, target, strict=True):
        for *cells, w in SPEC_SUPER_CELLS:
            p = sum(prow[i] for i in cells)
            t = sum(trow[i] for i in cells)
            l2_terms.append((t - p) ** 2 * max(t, p) * float(Fraction(w)))
    l2 = sum(l2_terms) / len(l2_terms)

    def blocks(rows: list[list[float]]) -> list[list[float]]:
        return [[sum(row[16 * b : 16 * b + 16]) for b in range(3)] for row in rows]

    return 4 * l1 + 2 * l2 + loop_cwmse(blocks(pred), blocks(target))


def test_super_cell_weights_sum_as_the_spec_says() -> None:
    assert sum(Fraction(w) for *_, w in SPEC_SUPER_CELLS) == Fraction(125625, 10000)


def test_telescope_matches_the_loop_reference() -> None:
    rng = np.random.default_rng(0)
    target = to_8x8(rng.random((7, 48)) * (rng.random((7, 48)) < 0.3))
    pred = rng.random((7, 1, 8, 8))  # values in the masked quadrant must not matter
    value = telescope_loss(torch.tensor(pred), torch.tensor(target))
    assert value.item() == pytest.approx(loop_telescope(pred, target), rel=1e-12)


def test_telescope_by_hand_one_charged_cell() -> None:
    # Target: cell 0 holds 1.0, everything else 0; prediction: all zeros. Worked out by hand:
    # L1 = (1-0)^2 * max(1, 0) / 48 = 1/48.
    # L2: cell 0 is in super-cells (0,1,4,5; W 3/8) and (0,1,27,31; W 3/8); each has t36 = 1, p36 = 0,
    #     term = 1^2 * 1 * 3/8, so L2 = (3/8 + 3/8) / 36 = 1/48.
    # L3: block 0 sums to 1, the others 0: L3 = 1/3.
    # loss = 4/48 + 2/48 + 1/3 = 1/8 + 1/3 = 11/24.
    target = np.zeros((1, 48))
    target[0, 0] = 1.0
    value = telescope_loss(torch.zeros(1, 1, 8, 8, dtype=torch.float64), torch.tensor(to_8x8(target)))
    assert value.item() == pytest.approx(11 / 24, rel=1e-12)
    # The old (wrong) form weighted the sums: L2 = 2 * (3/8)^2 * (3/8) / 36 would give a different value.
    assert value.item() != pytest.approx(4 / 48 + 2 * (2 * (3 / 8) ** 3 / 36) + 1 / 3, rel=1e-6)


def test_telescope_by_hand_two_cells_with_overprediction() -> None:
    # Target: cells 2 and 3 hold 0.5 each; prediction: cell 2 at 2.0, the rest 0 (row of 48 cells).
    # L1: cell 2: (0.5-2)^2 * 2 = 4.5; cell 3: 0.5^2 * 0.5 = 0.125 -> L1 = 4.625 / 48.
    # L2 super-cells holding 2 or 3 (t36, p36 plain 4-cell sums):
    #   (2,3,6,7; 1/3): t 1.0, p 2.0 -> 1 * 2 * 1/3 = 2/3
    #   (1,2,5,6; 1/4): t 0.5, p 2.0 -> 2.25 * 2 * 1/4 = 1.125
    #   (1,2,23,27; 1/4): t 0.5, p 2.0 -> 1.125
    #   (2,3,19,23; 5/12): t 1.0, p 2.0 -> 1 * 2 * 5/12 = 5/6
    #   (3,7,34,35; 5/12): t 0.5, p 0 -> 0.25 * 0.5 * 5/12 = 5/96
    #   L2 = (2/3 + 1.125 + 1.125 + 5/6 + 5/96) / 36
    # L3: block 0 t 1.0, p 2.0 -> 1 * 2 = 2; L3 = 2/3.
    target = np.zeros((1, 48))
    target[0, 2] = target[0, 3] = 0.5
    pred = np.zeros((1, 48))
    pred[0, 2] = 2.0
    l1 = 4.625 / 48
    l2 = (2 / 3 + 1.125 + 1.125 + 5 / 6 + 5 / 96) / 36
    l3 = 2 / 3
    value = telescope_loss(torch.tensor(to_8x8(pred)), torch.tensor(to_8x8(target)))
    assert value.item() == pytest.approx(4 * l1 + 2 * l2 + l3, rel=1e-12)


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
