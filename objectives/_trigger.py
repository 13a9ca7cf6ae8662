"""Muon-trigger data: a calibrated synthetic generator of hit images and a loader for its NPY/CSV format.

One row = one bunch crossing in a sector of the muon spectrometer: ``layers`` detector layers (4, or 9)
of ``STRIPS`` = 384 strips, each strip hit (1) or not (0), with the leading muon's labels in front::

    pt, charge, n_muons, hit[0, 0], hit[0, 1], ..., hit[layers-1, 383]      (float32, 3 + layers*384)

``pt`` is the leading (highest-pT) muon's transverse momentum in GeV and ``charge`` its charge (+1/-1);
both are 0 for an event without muons (``n_muons`` = 0). Files: ``.npy`` of that 2-D array, or ``.csv``
with that many columns and optionally the header ``pt,charge,n_muons,h0_0,...`` written by
:func:`write_trigger`.

The generator (:func:`synth_trigger`), with the properties the tests check:

- muon multiplicity 0, 1, 2, 3 with probabilities ``MULTIPLICITY`` = (0.30, 0.45, 0.15, 0.10);
  ``empty_fraction`` replaces the 0.30 and rescales the others;
- pT spectrum dN/dpT ~ pT^-2 between ``PT_MIN`` = 3 and ``PT_MAX`` = 100 GeV, i.e. 1/pT is uniform (median
  pT = 2 / (1/3 + 1/100) = 5.83 GeV); charge +1 or -1 with equal probability;
- straight tracks: the strip position at layer l is ``x0 + bend * charge / pT * (l - (layers-1)/2)``,
  ``x0`` uniform over the strips, ``bend`` = 40 strips GeV per layer spacing (a 3 GeV muon crosses 13
  strips per layer, a 100 GeV one 0.4); hits outside the chamber are lost;
- each layer records a muon with probability ``efficiency`` (default 0.95), as a cluster of 1, 2 or 3
  adjacent strips (equally likely) starting at the rounded position;
- every strip fires as noise with probability ``occupancy`` (default 0.005, ~1.9 noise strips per layer),
  independently of tracks.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from objectives._errors import DataError

STRIPS = 384
LABELS = ("pt", "charge", "n_muons")
PT_MIN, PT_MAX = 3.0, 100.0
MULTIPLICITY = (0.30, 0.45, 0.15, 0.10)
BEND = 40.0
EFFICIENCY = 0.95
OCCUPANCY = 0.005


def columns(layers: int) -> int:
    return len(LABELS) + layers * STRIPS


def multiplicity_probabilities(empty_fraction: float | None = None) -> np.ndarray:
    """P(0..3 muons): ``MULTIPLICITY``, or with P(0) = ``empty_fraction`` and the rest rescaled."""
    probs = np.array(MULTIPLICITY)
    if empty_fraction is not None:
        if not 0.0 <= empty_fraction <= 1.0:
            raise DataError(f"empty_fraction must be in [0, 1], got {empty_fraction}")
        probs[1:] *= (1.0 - empty_fraction) / probs[1:].sum()
        probs[0] = empty_fraction
    return probs


def synth_trigger(
    rows: int,
    *,
    seed: int,
    layers: int = 4,
    occupancy: float = OCCUPANCY,
    efficiency: float = EFFICIENCY,
    empty_fraction: float | None = None,
    bend: float = BEND,
) -> np.ndarray:
    """``rows`` synthetic events (see the module docstring), the same for the same arguments; float32."""
    if not 0.0 <= occupancy <= 1.0 or not 0.0 <= efficiency <= 1.0:
        raise DataError(f"occupancy and efficiency must be in [0, 1], got {occupancy} and {efficiency}")
    rng = np.random.default_rng(seed)
    hits = rng.random((rows, layers, STRIPS)) < occupancy
    counts = rng.choice(4, size=rows, p=multiplicity_probabilities(empty_fraction))
    labels = np.zeros((rows, len(LABELS)), dtype=np.float32)
    labels[:, 2] = counts
    offsets = np.arange(layers) - (layers - 1) / 2
    for row in np.flatnonzero(counts):
        n = int(counts[row])
        inverse = rng.uniform(1 / PT_MAX, 1 / PT_MIN, n)
        charge = rng.choice((-1.0, 1.0), n)
        x0 = rng.uniform(0, STRIPS, n)
        recorded = rng.random((n, layers)) < efficiency
        width = rng.integers(1, 4, (n, layers))
        for muon in range(n):
            positions = np.rint(x0[muon] + bend * charge[muon] * inverse[muon] * offsets).astype(int)
            for layer in np.flatnonzero(recorded[muon]):
                start = positions[layer]
                lo, hi = max(start, 0), min(start + width[muon, layer], STRIPS)
                if lo < hi:
                    hits[row, layer, lo:hi] = True
        lead = int(np.argmin(inverse))
        labels[row, 0] = 1 / inverse[lead]
        labels[row, 1] = charge[lead]
    return np.concatenate((labels, hits.reshape(rows, -1).astype(np.float32)), axis=1)


def header(layers: int) -> list[str]:
    return [*LABELS, *(f"h{layer}_{strip}" for layer in range(layers) for strip in range(STRIPS))]


def load_trigger(path: str | os.PathLike[str], *, layers: int, max_rows: int | None = None) -> np.ndarray:
    """(N, 3 + layers*384) float32 events from ``.npy`` or ``.csv`` (header optional), validated.

    Raises DataError naming the file and the first problem: missing file, wrong column count, a hit that
    is not 0/1, an ``n_muons`` outside 0..3, or labels that contradict ``n_muons``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            array = np.asarray(array[:max_rows], dtype=np.float32)
        elif suffix == ".csv":
            with path.open() as stream:
                first = stream.readline()
            skip = 0 if first.split(",")[0].strip().lstrip("-").replace(".", "", 1).isdigit() else 1
            array = np.loadtxt(
                path, delimiter=",", skiprows=skip, max_rows=max_rows, dtype=np.float32, ndmin=2
            )
        else:
            raise DataError(f"{path}: unknown format {suffix!r}; allowed: .npy, .csv")
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable trigger file: {exc}") from None
    check_trigger(array, layers=layers, source=str(path))
    return array


def check_trigger(array: np.ndarray, *, layers: int, source: str) -> None:
    """DataError naming the first row that breaks the trigger format (see :func:`load_trigger`)."""
    if array.ndim != 2 or array.shape[1] != columns(layers):
        raise DataError(
            f"{source}: expected {columns(layers)} columns (pt, charge, n_muons and {layers}x{STRIPS} hits), "
            f"got shape {array.shape}"
        )
    hits = array[:, len(LABELS) :]
    bad = np.flatnonzero(((hits != 0) & (hits != 1)).any(axis=1))
    if bad.size:
        raise DataError(f"{source}: row {bad[0]}: hits must be 0 or 1")
    pt, charge, count = array[:, 0], array[:, 1], array[:, 2]
    wrong = ~np.isin(count, (0, 1, 2, 3))
    wrong |= (count > 0) & ((pt <= 0) | ~np.isin(charge, (-1, 1)))
    wrong |= (count == 0) & ((pt != 0) | (charge != 0))
    bad = np.flatnonzero(wrong)
    if bad.size:
        raise DataError(
            f"{source}: row {bad[0]}: labels (pt, charge, n_muons) = {tuple(array[bad[0], :3])} are "
            "inconsistent (n_muons 0..3; pt > 0 and charge +-1 with muons, both 0 without)"
        )


def write_trigger(
    rows: np.ndarray | Iterable[np.ndarray], path: str | os.PathLike[str], *, layers: int
) -> int:
    """Write events atomically as ``.npy`` or ``.csv`` (with header); the number of rows written."""
    path = Path(path)
    array = rows if isinstance(rows, np.ndarray) else np.concatenate(list(rows))
    check_trigger(array, layers=layers, source=str(path))
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".csv"):
        raise DataError(f"{path}: unknown format {suffix!r}; allowed: .npy, .csv")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as stream:
            if suffix == ".npy":
                np.save(stream, array.astype(np.float32))
            else:
                np.savetxt(
                    stream, array, delimiter=",", fmt="%.6g", header=",".join(header(layers)), comments=""
                )
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"{path}: cannot write: {exc}") from None
    return int(array.shape[0])
