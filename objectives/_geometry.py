"""The 48-cell ECON-T module: trigger-cell centres, the 8x8 image arrangement and its inverse map."""

from __future__ import annotations

from typing import overload

import numpy as np
import torch
from numpy.typing import NDArray

from objectives._errors import ObjectivesError

N_CELLS = 48

# Trigger-cell centres in CALQ order, in the units of the reference geometry.
_RAW_CENTRES = (
    (0.0, 0.0), (0.0, -2.4168015), (0.0, -4.833603), (0.0, -7.2504044),
    (2.09301, -1.2083969), (2.09301, -3.6251984), (2.09301, -6.042), (2.09301, -8.458794),
    (4.18602, -2.4168015), (4.18602, -4.833603), (4.18602, -7.2504044), (4.18602, -9.667198),
    (6.27903, -3.6251984), (6.27903, -6.042), (6.27903, -8.458794), (6.27903, -10.875603),
    (-8.37204, -10.271393), (-6.27903, -9.063004), (-4.18602, -7.854599), (-2.0930138, -6.6461945),
    (-8.37204, -7.854599), (-6.27903, -6.6461945), (-4.18602, -5.4377975), (-2.0930138, -4.229393),
    (-8.37204, -5.4377975), (-6.27903, -4.229393), (-4.18602, -3.020996), (-2.0930138, -1.8125992),
    (-8.37204, -3.020996), (-6.27903, -1.8125992), (-4.18602, -0.6042023), (-2.0930138, 0.6042023),
    (4.7092705, -12.386101), (2.6162605, -11.177696), (0.5232506, -9.969299), (-1.5697594, -8.760895),
    (2.6162605, -13.594498), (0.5232506, -12.386101), (-1.5697594, -11.177696), (-3.6627693, -9.969299),
    (0.5232506, -14.802895), (-1.5697594, -13.594498), (-3.6627693, -12.386101), (-5.7557793, -11.177696),
    (-1.5697594, -16.0113), (-3.6627693, -14.802895), (-5.7557793, -13.594498), (-7.848793, -12.386101),
)  # fmt: skip

#: Cell centres (48, 2) scaled so that neighbouring cells are 2.0 apart (the reference EMD geometry).
CELL_CENTRES: NDArray[np.float64] = np.asarray(_RAW_CENTRES, dtype=np.float64) / (0.5 * 2.4168015)
CELL_CENTRES.flags.writeable = False

#: Euclidean ground distance (48, 48) between cell centres, the EMD cost matrix.
GROUND_DISTANCE: NDArray[np.float64] = np.sqrt(
    ((CELL_CENTRES[:, None, :] - CELL_CENTRES[None, :, :]) ** 2).sum(axis=-1)
)
GROUND_DISTANCE.flags.writeable = False

#: Pixel (row-major index 0..63 of the 8x8 image) that holds CALQ cell i; the lower-right quadrant stays 0.
CALQ_TO_PIXEL: tuple[int, ...] = (
    4, 12, 20, 28, 5, 13, 21, 29, 6, 14, 22, 30, 7, 15, 23, 31,
    24, 25, 26, 27, 16, 17, 18, 19, 8, 9, 10, 11, 0, 1, 2, 3,
    59, 51, 43, 35, 58, 50, 42, 34, 57, 49, 41, 33, 56, 48, 40, 32,
)  # fmt: skip
_PIXELS = np.asarray(CALQ_TO_PIXEL, dtype=np.int64)
_PIXELS_TORCH = torch.from_numpy(_PIXELS)


def _check_shape(x: np.ndarray | torch.Tensor, expected: tuple[int, ...], what: str) -> None:
    if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != expected:
        shape = "(N, " + ", ".join(str(s) for s in expected) + ")"
        raise ObjectivesError(f"{what} must have shape {shape}, got {tuple(x.shape)}")


@overload
def to_8x8(x48: np.ndarray) -> np.ndarray: ...
@overload
def to_8x8(x48: torch.Tensor) -> torch.Tensor: ...
def to_8x8(x48: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Arrange (N, 48) cells in CALQ order as (N, 1, 8, 8) images; the lower-right 4x4 quadrant is 0.

    Accepts a numpy array (returns numpy, same dtype) or a torch tensor (returns a tensor; differentiable).
    Raises ObjectivesError for any other shape.
    """
    _check_shape(x48, (N_CELLS,), "to_8x8 input")
    n = x48.shape[0]
    if isinstance(x48, torch.Tensor):
        flat = x48.new_zeros((n, 64)).index_copy(1, _PIXELS_TORCH.to(x48.device), x48)
        return flat.reshape(n, 1, 8, 8)
    image = np.zeros((n, 64), dtype=x48.dtype)
    image[:, _PIXELS] = x48
    return image.reshape(n, 1, 8, 8)


@overload
def from_8x8(img: np.ndarray) -> np.ndarray: ...
@overload
def from_8x8(img: torch.Tensor) -> torch.Tensor: ...
def from_8x8(img: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Read the 48 cells (CALQ order) back from (N, 1, 8, 8) images; the masked quadrant is ignored.

    Accepts numpy (returns numpy) or torch (returns a differentiable tensor). Raises ObjectivesError for any
    other shape.
    """
    _check_shape(img, (1, 8, 8), "from_8x8 input")
    if isinstance(img, torch.Tensor):
        return img.reshape(img.shape[0], 64).index_select(1, _PIXELS_TORCH.to(img.device))
    return img.reshape(img.shape[0], 64)[:, _PIXELS]
