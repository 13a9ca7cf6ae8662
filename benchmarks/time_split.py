"""Where a sweep's worker time went: busy seconds by model family (conv / dense) and trial kind.

Reads a finished sweep from its store and prints one line per trial (state, replicate, start, seconds, EMD,
ops, description) and the busy time split. The committed output, `time_split.txt`, is of a 5-minute sweep
launched with `search_real.py`'s hwnas config (seed 1) on the real ttbar sample; it is the evidence for
bounding interleaved explorations in time (package docstring of `search.strategies.hwnas`).

    python benchmarks/time_split.py STORE_URL SWEEP_NAME
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from search_real import _describe

from search.results import ResultsError, require_store
from search.storage import Store


def main(url: str, name: str) -> None:
    try:
        require_store(url)  # a mistyped path must not leave an empty store behind
    except ResultsError as exc:
        print(f"error: {exc}")
        raise SystemExit(2) from None
    store = Store(url)
    sweep = store.get_sweep(name)
    if sweep is None:
        print(f"error: no sweep {name!r} in {url}")
        raise SystemExit(2)
    trials = [t for t in store.trials(sweep.id) if t.started_at and t.finished_at]
    start = min(t.started_at for t in trials if t.started_at)
    busy: dict[str, list[float]] = defaultdict(list)
    for t in sorted(trials, key=lambda t: t.number):
        assert t.started_at and t.finished_at
        seconds = (t.finished_at - t.started_at).total_seconds()
        family = "conv" if int(t.params.get("n_conv", 0) or 0) else "dense"
        kind = "replicate" if t.replicate_of is not None else t.state.value.lower()
        busy[f"{kind} {family}"].append(seconds)
        emd = t.results.get("emd_mean", float("nan"))
        print(
            f"{t.number:3d} {kind:9s} start {(t.started_at - start).total_seconds():4.0f} s  {seconds:6.1f} s  "
            f"EMD {emd:5.2f}  ops {t.results.get('ops', float('nan')):8.0f}  {_describe(t.params)}"
        )
    total = sum(sum(v) for v in busy.values())
    print(f"\nbusy {total:.0f} s in all")
    for kind, values in sorted(busy.items()):
        print(
            f"  {kind:18s} {len(values):3d} trials {sum(values):6.0f} s  {100 * sum(values) / total:4.1f} %"
        )
    conv = sum(sum(v) for k, v in busy.items() if k.endswith("conv"))
    print(f"  conv encoders in all: {100 * conv / total:.1f} %")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("store", help="the sweep's store URL, e.g. sqlite:///sweep.db")
    parser.add_argument("sweep", help="the sweep's name")
    args = parser.parse_args()
    main(args.store, args.sweep)
