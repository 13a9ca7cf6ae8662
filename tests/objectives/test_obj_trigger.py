"""The trigger task's generator (documented properties), file format, targets and metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from objectives import DataError, get_task
from objectives._trigger import (
    MULTIPLICITY,
    PT_MAX,
    PT_MIN,
    STRIPS,
    load_trigger,
    synth_trigger,
    write_trigger,
)
from objectives._trigger_task import targets, trigger_metrics


def test_noise_occupancy_and_multiplicity_match_the_documented_values() -> None:
    rows = synth_trigger(4000, seed=1, occupancy=0.01)
    count = rows[:, 2]
    frequencies = np.bincount(count.astype(int), minlength=4) / len(count)
    np.testing.assert_allclose(frequencies, MULTIPLICITY, atol=0.025)
    empty = rows[count == 0, 3:]
    assert empty.mean() == pytest.approx(0.01, rel=0.05)  # noise only: occupancy per strip
    muon = rows[count > 0, 3:]
    assert muon.mean() > empty.mean()  # tracks add hits
    assert set(np.unique(rows[:, 3:])) == {0.0, 1.0}


def test_pt_spectrum_is_uniform_in_inverse_pt_and_charges_are_balanced() -> None:
    rows = synth_trigger(6000, seed=2, empty_fraction=0.0)
    assert (rows[:, 2] > 0).all()
    pt, charge = rows[:, 0], rows[:, 1]
    assert pt.min() >= PT_MIN and pt.max() <= PT_MAX
    single = rows[rows[:, 2] == 1, 0]  # the leading muon of one is a plain draw from the spectrum
    u = (1 / PT_MIN - 1 / single) / (1 / PT_MIN - 1 / PT_MAX)  # uniform on [0, 1] if 1/pT is uniform
    assert np.quantile(u, [0.25, 0.5, 0.75]) == pytest.approx([0.25, 0.5, 0.75], abs=0.03)
    assert np.median(single) == pytest.approx(2 / (1 / PT_MIN + 1 / PT_MAX), rel=0.05)
    assert abs(charge.mean()) < 0.05 and set(np.unique(charge)) == {-1.0, 1.0}


def test_a_clean_track_bends_with_charge_over_pt_and_clusters_are_one_to_three_strips() -> None:
    rows = synth_trigger(3000, seed=3, occupancy=0.0, efficiency=1.0, empty_fraction=0.0)
    single = rows[rows[:, 2] == 1]
    hits = single[:, 3:].reshape(-1, 4, STRIPS)
    widths = hits.sum(axis=2)
    inside = (widths > 0).all(axis=1)
    assert inside.mean() > 0.8  # efficiency 1: every layer records the muon unless it left the chamber
    assert widths[inside].min() >= 1 and widths[inside].max() <= 3
    first = np.array([np.flatnonzero(layer)[0] for layer in hits[inside][:, 0]])
    last = np.array([np.flatnonzero(layer)[0] for layer in hits[inside][:, 3]])
    expected = 40.0 * single[inside, 1] / single[inside, 0] * 3  # bend * q/pT * (3 layer spacings)
    assert np.corrcoef(last - first, expected)[0, 1] > 0.95


def test_files_round_trip_and_bad_files_name_the_problem(tmp_path: Path) -> None:
    rows = synth_trigger(20, seed=4)
    for suffix in (".npy", ".csv"):
        path = tmp_path / f"events{suffix}"
        assert write_trigger(rows, path, layers=4) == 20
        np.testing.assert_allclose(load_trigger(path, layers=4), rows, rtol=1e-5)
    with pytest.raises(DataError, match="expected 3459 columns"):
        load_trigger(tmp_path / "events.npy", layers=9)
    broken = rows.copy()
    broken[5, 0] = 0.0  # a muon event without pT
    broken[5, 2] = 1
    np.save(tmp_path / "bad.npy", broken)
    with pytest.raises(DataError, match="row 5: labels"):
        load_trigger(tmp_path / "bad.npy", layers=4)
    assert get_task("trigger").recognizes(tmp_path / "events.npy")
    assert not get_task("trigger9").recognizes(tmp_path / "events.npy")


def test_metrics_of_perfect_and_of_always_firing_predictions() -> None:
    raw = synth_trigger(500, seed=5)
    y = targets(raw)
    perfect = torch.stack((y[:, 0], (y[:, 1] * 2 - 1) * 10, (y[:, 2] * 2 - 1) * 10), dim=1)
    metrics = trigger_metrics(perfect, raw)
    assert metrics["pt_resolution"] == pytest.approx(0.0, abs=1e-5)
    assert metrics["charge_accuracy"] == 1.0 and metrics["trigger_efficiency"] == 1.0
    assert metrics["fake_rate"] == 0.0
    always = torch.tensor([[PT_MIN / 50.0, 1.0, 5.0]]).repeat(500, 1)  # fires at 50 GeV on everything
    assert trigger_metrics(always, raw)["fake_rate"] == 1.0


def test_the_trigger_model_trains_on_targets_and_nine_layers_work() -> None:
    from objectives import TrainSettings, train

    task = get_task("trigger9")
    data = task.prepare("synthetic", rows=120, seed=0, val_rows=None)
    assert data.train_x.shape[1:] == (1, 9, STRIPS) and data.train_y is not None
    model = task.build_model({"n_conv": 1, "conv0_filters": 2, "conv0_kernel": 8, "conv0_stride": 8})
    result = train(model, task, data, TrainSettings(epochs=1, batch_size=32))
    assert result.epochs_run == 1
    assert set(task.evaluate(model, data)) == set(task.metric_directions)


def test_a_validation_subsample_keeps_inputs_and_targets_aligned() -> None:
    data = get_task("trigger").prepare("synthetic", rows=100, seed=0)
    head = data.head(7)
    assert head.val_x.shape[0] == head.val_y.shape[0] == head.val_raw.shape[0] == 7  # type: ignore[union-attr]
    assert torch.equal(head.val_y, targets(data.val_raw[:7]))  # type: ignore[arg-type]
    assert head.train_x is data.train_x
