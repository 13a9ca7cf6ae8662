"""The 8x8 arrangement and the cell geometry, checked against the spec's own tables."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest
import torch

from objectives import CALQ_TO_PIXEL, ObjectivesError, from_8x8, to_8x8
from objectives._geometry import CELL_CENTRES, GROUND_DISTANCE

# The spec's 8x8 picture: the CALQ index shown at each pixel, -1 for the masked quadrant.
SPEC_IMAGE = np.array(
    [
        [28, 29, 30, 31, 0, 4, 8, 12],
        [24, 25, 26, 27, 1, 5, 9, 13],
        [20, 21, 22, 23, 2, 6, 10, 14],
        [16, 17, 18, 19, 3, 7, 11, 15],
        [47, 43, 39, 35, -1, -1, -1, -1],
        [46, 42, 38, 34, -1, -1, -1, -1],
        [45, 41, 37, 33, -1, -1, -1, -1],
        [44, 40, 36, 32, -1, -1, -1, -1],
    ]
)


def test_inverse_map_matches_the_picture() -> None:
    flat = SPEC_IMAGE.reshape(64)
    assert all(flat[pixel] == calq for calq, pixel in enumerate(CALQ_TO_PIXEL))
    assert sorted(CALQ_TO_PIXEL) == sorted(np.flatnonzero(flat >= 0).tolist())


def test_to_8x8_places_every_cell_and_masks_the_quadrant() -> None:
    cells = np.arange(1, 49, dtype=np.float32)[None, :]  # cell i carries i + 1
    image = to_8x8(cells)
    assert image.shape == (1, 1, 8, 8) and image.dtype == np.float32
    expected = np.where(SPEC_IMAGE >= 0, SPEC_IMAGE + 1, 0)
    np.testing.assert_array_equal(image[0, 0], expected)
    np.testing.assert_array_equal(from_8x8(image), cells)


def test_torch_versions_agree_with_numpy_and_carry_gradients() -> None:
    rng = np.random.default_rng(3)
    cells = rng.random((5, 48))
    tensor = torch.tensor(cells, requires_grad=True)
    image = to_8x8(tensor)
    np.testing.assert_array_equal(image.detach().numpy(), to_8x8(cells))
    back = from_8x8(image)
    (back * torch.arange(48.0, dtype=torch.float64)).sum().backward()
    assert tensor.grad is not None
    np.testing.assert_array_equal(tensor.grad.numpy(), np.tile(np.arange(48.0), (5, 1)))


def test_from_8x8_ignores_the_masked_quadrant() -> None:
    image = np.zeros((2, 1, 8, 8))
    image[:, 0, 4:, 4:] = 7.0
    assert not from_8x8(image).any()


@pytest.mark.parametrize(
    ("function", "shape", "expected"), [(to_8x8, (3, 47), "(N, 48)"), (from_8x8, (3, 8, 8), "(N, 1, 8, 8)")]
)
def test_wrong_shapes_are_named(
    function: Callable[[np.ndarray], np.ndarray], shape: tuple[int, ...], expected: str
) -> None:
    with pytest.raises(ObjectivesError, match=re.escape(f"must have shape {expected}, got {shape}")):
        function(np.zeros(shape))


def test_ground_distance_scale() -> None:
    assert CELL_CENTRES.shape == (48, 2)
    np.testing.assert_allclose(GROUND_DISTANCE, GROUND_DISTANCE.T)
    np.testing.assert_array_equal(np.diag(GROUND_DISTANCE), 0.0)
    assert GROUND_DISTANCE.max() == pytest.approx(13.76, abs=0.01)
    # Inside each 16-cell block, neighbouring centres are 2.0 apart; across the block seams the
    # reference geometry puts a few cells slightly closer (1.80).
    for block in range(3):
        cells = slice(16 * block, 16 * (block + 1))
        inside = GROUND_DISTANCE[cells, cells][~np.eye(16, dtype=bool)]
        assert inside.min() == pytest.approx(2.0, abs=1e-5)
    assert GROUND_DISTANCE[~np.eye(48, dtype=bool)].min() == pytest.approx(1.8028, abs=1e-4)
