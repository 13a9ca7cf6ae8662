"""Per-row normalisation and seeded splits."""

from __future__ import annotations

import numpy as np
import pytest

from objectives import ObjectivesError, denormalize, normalize, split_indices, synth_econt


def test_sumlog2_brings_every_row_sum_into_1_to_2_and_back() -> None:
    x = synth_econt(500, seed=0)
    x[0] = 0.0
    x[0, 3] = 1024.0  # an exact power of two stays at sum 1
    normalised, scale = normalize(x)
    sums = normalised.sum(axis=1, dtype=np.float64)
    assert ((sums >= 1 - 1e-6) & (sums < 2)).all()
    assert sums[0] == 1.0 and scale[0] == 1024.0
    np.testing.assert_array_equal(np.log2(scale), np.floor(np.log2(x.sum(axis=1, dtype=np.float64))))
    assert normalised.dtype == np.float32
    np.testing.assert_allclose(denormalize(normalised, scale), x, rtol=1e-6)


def test_max_and_sum_modes() -> None:
    x = np.array([[1.0, 3.0, 4.0], [0.5, 0.0, 0.5]])
    by_max, max_scale = normalize(x, "max")
    by_sum, sum_scale = normalize(x, "sum")
    np.testing.assert_allclose(by_max, [[0.25, 0.75, 1.0], [1.0, 0.0, 1.0]])
    np.testing.assert_allclose(max_scale, [4.0, 0.5])
    np.testing.assert_allclose(by_sum.sum(axis=1), [1.0, 1.0])
    np.testing.assert_allclose(sum_scale, [8.0, 1.0])


def test_zero_rows_keep_scale_one() -> None:
    normalised, scale = normalize(np.zeros((2, 48)))
    assert not normalised.any() and (scale == 1.0).all()


def test_denormalize_accepts_images() -> None:
    images = np.ones((3, 1, 8, 8), dtype=np.float32)
    out = denormalize(images, np.array([1.0, 2.0, 4.0]))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 0, 0, 0], [1.0, 2.0, 4.0])


def test_bad_arguments_are_named() -> None:
    with pytest.raises(
        ObjectivesError, match=r"unknown normalisation mode 'log'; allowed: sumlog2, max, sum"
    ):
        normalize(np.ones((2, 48)), "log")  # type: ignore[arg-type]
    with pytest.raises(ObjectivesError, match=r"2-D \(rows, values\) array, got shape \(48,\)"):
        normalize(np.ones(48))
    with pytest.raises(ObjectivesError, match=r"one scale per row: 3 rows, scale \(2,\)"):
        denormalize(np.ones((3, 48)), np.ones(2))


def test_unshuffled_split_keeps_the_order() -> None:
    validation, training = split_indices(10, (0.2, 0.8), seed=None)
    np.testing.assert_array_equal(validation, [0, 1])
    np.testing.assert_array_equal(training, np.arange(2, 10))


def test_seeded_split_is_a_reproducible_partition() -> None:
    parts = split_indices(1001, (0.48, 0.15, 0.12, 0.25), seed=4)
    assert [p.size for p in parts] == [480, 151, 120, 250]  # 480.48, 630.63, 750.75 rounded, then 1001
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(1001))
    again = split_indices(1001, (0.48, 0.15, 0.12, 0.25), seed=4)
    assert all((a == b).all() for a, b in zip(parts, again, strict=True))
    other = split_indices(1001, (0.48, 0.15, 0.12, 0.25), seed=5)
    assert not (parts[0] == other[0]).all()


@pytest.mark.parametrize(
    ("n", "fractions", "message"),
    [
        (-1, (1.0,), r"n >= 0, got -1"),
        (10, (), r"one or more finite values >= 0, got \[\]"),
        (10, (0.5, -0.1, 0.6), r"finite values >= 0, got \[0.5, -0.1, 0.6\]"),
        (10, (0.5, 0.4), r"must sum to 1, got \[0.5, 0.4\] \(sum 0.9\)"),
    ],
)
def test_bad_splits_are_named(n: int, fractions: tuple[float, ...], message: str) -> None:
    with pytest.raises(ObjectivesError, match=message):
        split_indices(n, fractions, seed=0)
