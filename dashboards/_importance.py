"""Parameter importance for each objective: how much worse a random forest fitted on the completed trials
predicts trials it has not seen when one parameter's values are shuffled (permutation importance on a
held-out quarter, scikit-learn).

Honest by construction: it measures predictive value on unseen trials, not split counts (which favour
parameters with many values); it says how well the forest predicts at all (held-out R²), since importances
of a forest that predicts nothing mean nothing; and it refuses to guess from fewer than ``MIN_TRIALS``.
Parameters inactive in a trial (conditional ones) are missing values, which the forest handles.
"""

from __future__ import annotations

import math
from typing import Any

from search.storage import TrialRecord

MIN_TRIALS = 12
MAX_TRIALS = 2000  # a random sample beyond this: the estimate is as good and stays within a second or two
METHOD = "permutation importance of a random forest (scikit-learn), on held-out trials"


def _encode(trials: list[TrialRecord]) -> tuple[list[str], list[list[float]]]:
    """The varying parameters and one row per trial: numbers as they are, booleans 0/1, other values by
    their rank among the values seen, inactive parameters NaN."""
    names = sorted({name for t in trials for name in t.params})
    columns: dict[str, list[float]] = {}
    for name in names:
        values = [t.params.get(name) for t in trials]
        present = [v for v in values if v is not None]
        if len({repr(v) for v in present}) < 2:
            continue  # a constant cannot matter
        if all(isinstance(v, int | float) for v in present):
            columns[name] = [math.nan if v is None else float(v) for v in values]
        else:
            ranks = {text: i for i, text in enumerate(sorted({str(v) for v in present}))}
            columns[name] = [math.nan if v is None else float(ranks[str(v)]) for v in values]
    kept = list(columns)
    return kept, [[columns[name][i] for name in kept] for i in range(len(trials))]


def importance(trials: list[TrialRecord], objectives: list[str]) -> dict[str, Any]:
    """{"method", "trials_used", "objectives": {objective: {param: share}}, "fit": {objective: R²},
    "note"} over the completed ``trials`` that carry every objective as a finite value."""
    usable = [t for t in trials if all(math.isfinite(t.results.get(n, math.nan)) for n in objectives)]
    empty: dict[str, Any] = {"method": METHOD, "trials_used": len(usable), "objectives": {}, "fit": {}}
    if len(usable) < MIN_TRIALS:
        return {**empty, "note": f"needs at least {MIN_TRIALS} completed trials; {len(usable)} so far"}
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(0)
    if len(usable) > MAX_TRIALS:
        usable = [usable[i] for i in sorted(rng.choice(len(usable), MAX_TRIALS, replace=False))]
    names, rows = _encode(usable)
    if not names:
        return {**empty, "trials_used": len(usable), "note": "no parameter varies between the trials"}
    features = np.array(rows, dtype=float)
    shares: dict[str, dict[str, float]] = {}
    fit: dict[str, float | None] = {}
    for objective in objectives:
        target = np.array([t.results[objective] for t in usable], dtype=float)
        if (target > 0).all() and target.max() > 100 * target.min():
            target = np.log10(target)  # costs span decades: explain their orders of magnitude
        x_fit, x_held, y_fit, y_held = train_test_split(features, target, test_size=0.25, random_state=0)
        forest = RandomForestRegressor(n_estimators=60, min_samples_leaf=2, random_state=0, n_jobs=1)
        forest.fit(x_fit, y_fit)
        score = float(forest.score(x_held, y_held))
        fit[objective] = score if math.isfinite(score) else None
        drops = permutation_importance(forest, x_held, y_held, n_repeats=4, random_state=0, n_jobs=1)
        gains = np.clip(drops.importances_mean, 0.0, None)
        total = float(gains.sum())
        shares[objective] = {
            name: (float(gain) / total if total > 0 else 0.0)
            for name, gain in sorted(zip(names, gains, strict=True), key=lambda item: -item[1])
        }
    note = None
    if any(score is None or score < 0.1 for score in fit.values()):
        note = (
            "the forest predicts some objectives poorly (held-out R² < 0.1): read those importances as noise"
        )
    return {"method": METHOD, "trials_used": len(usable), "objectives": shares, "fit": fit, "note": note}
