"""The ``hwnas`` strategy: Bayesian search that uses what is known exactly (meant to be the default).

Hardware cost objectives (``ops``, ``bops``, ``latency_ns``, ... and ``model_kb``) are exact functions of the
config, known from the sweep's cost oracle in ~50 ms without training; only quality (``emd_mean``, ...) is
unknown. General-purpose optimisers model the costs as if they were noisy unknowns too. This strategy
models only quality and treats costs as the known coordinates they are (the Sherlock idea of Pareto active
learning over a pool, with exact cost axes). Each ``ask``:

1. **Candidate pool.** Architectures already costed (the *archive*) are recombined with fresh training
   settings (``training_params``, default lr, batch_size, l1_reg, l1: the cost does not depend on them, so
   such candidates cost nothing to price), training settings of front members are perturbed, and at most
   ``cost_calls`` new architectures are costed per ask: random draws until there is a front, then nine
   times in ten a mutation of a front member's architecture (one or two parameters stepped along their
   domain or redrawn; layers appearing or vanishing get drawn or dropped parameters), else a draw. Every
   candidate is validated (infeasible ones dropped) and deduplicated by canonical config against
   everything asked or observed: two trials never share architecture *and* training settings. Costs are
   cached by architecture; architectures the oracle rejects (over a budget, not convertible) are never
   proposed. The first ask costs up to ``8 * cost_calls`` architectures; when the archive is still empty
   it keeps costing until one is accepted, and after 64 rejections in a row without any accepted
   architecture it raises :class:`StrategyError` ("every candidate is rejected ...") instead of searching
   forever.
2. **Quality model.** A regressor of the quality objectives over an encoding of the conditional config
   (each parameter scaled to [0, 1], log parameters on a log scale, unordered choices one-hot; an inactive
   parameter takes the neutral 0.5 and each distinct activation condition gets a 0/1 indicator), plus the
   exact log-costs as features (quality correlates with size). ``model``: ``rf`` (random forest, the mean
   and spread over its trees) or ``gp`` (isotropic Matern-5/2 Gaussian process with a noise term). The
   regressor models what a linear trend in the log-costs leaves: a forest predicts no config better than
   the best trained one, so without the trend a config dearer than every trained one never looks better
   than them and the front never grows towards larger models; the trend extrapolates at most one decade
   of cost past the costs it was last fitted on (a ridge-penalised least-squares fit, so costs that move
   together share one slope). A trial *misses* when the task flags it collapsed (a near-constant
   output) or the scheduler prunes it: a second forest, fitted on the 0/1 miss flag of every completed and
   pruned trial, gives each candidate a probability of missing. A third one (with the cost trend) predicts
   a candidate's log wall time per epoch from the seconds the completed and pruned trials took in their
   workers over the epochs they ran (the driver tells both; at least 3 needed): the slowest architectures
   are often the ones an early rung cuts, and without their times the model would not know what they cost.
3. **Acquisition.** Expected hypervolume improvement over the observed front, in a normalised space (costs
   as log10(1 + cost), each axis scaled by the observed range) with the sweep's reference point or, without
   one, the front's nadir plus 10 % of the range. For one quality objective the EHVI is exact and cheap: the
   front splits cost space into cells with a known quality threshold, and the EHVI is the sum over the cells
   the candidate dominates of cell volume times the expected improvement below the threshold. For several
   quality objectives it is a Monte-Carlo estimate (32 common random draws, hypervolumes by ``moocore``).
   Each EHVI is multiplied by the candidate's probability of not missing: a collapsed model scores the
   constant output's quality and a pruned one has no final quality, so neither improves the front. With
   ``per_second`` (the default) it is also divided by the candidate's predicted wall time over the median
   trial's: a sweep runs against the clock on a few workers, and a model that takes ten times as long to
   train must promise ten times the improvement (what a trial adds to the front per second it takes).
   Candidates whose known cost and predicted mean a front member's known cost and predicted mean weakly
   dominate are never proposed (with at least one cost objective): model against model, since a front
   member's observed quality is the lucky one of its noisy draws and a new config's prediction is pulled
   towards the average, which would close every candidate between front members. Ties
   (e.g. no improvement expected anywhere) go to the candidate farthest along the cost axes from every
   known and pending config. A batch
   (``ask(n)`` with n > 1, and proposals still pending) is chosen greedily, each pick entering the front at
   its predicted mean ("kriging believer"), so a batch spreads instead of piling up.

**Compression that buys no cost is not searched.** On the first ask, each compression knob of
``spaces.UNCOMPRESSED`` (``quantize``, ``sparsity``) is priced on and off on 3 architectures (at most 48
oracle calls per knob, on top of the ask's own, and not counted towards the rejection limit); if switching
it on lowered no cost objective and never turned a rejected architecture into an accepted one (``ops``
counts every weight at any width, pruned or not), it is pinned to its uncompressed value for the sweep:
under such objectives compression can only cost quality, and a sparsity drawn in 0..0.9 collapses most
short runs. Under ``bops``, ``model_kb`` or ``nonzero_params`` the knobs lower a cost and stay searched.
``pin_compression: false`` searches them anyway; they are searched too when the space's domain leaves out
the uncompressed value, when they are listed in ``training_params``, and when a conditional knob is active in
fewer than 3 of 24 draws. ``state_dict()["pinned_compression"]`` shows the pins (None before the first ask).

Until ``n_initial`` trials have finished, at least 3 of them completed (pruned and failed ones count as
finished; and whenever the model cannot be fitted: logged as a warning, e.g. every finished trial failed)
proposals are space-filling: the candidate farthest, in normalised log-cost (plus a quarter weight of
architecture distance), from every known config and from the two ends of the pool's cost range, which
stratifies the first trials inside the cost range (its cheapest end learns least, its dearest trains
slowest). Distances leave the training settings out: a maximin over them pushes lr to the ends of its range,
where a short run learns least (a real ttbar sweep ran 11 of 37 trials at lr = 1e-3 that way, footer of
benchmarks/search_real_ops_arch_spread.txt); the training settings of a space-filling pick are the pool's random draw, and those of an exploration pick
(below) the ones the model rates best among the candidates of the chosen architecture. With a reference
point, candidates whose exact cost is at or past it on a cost axis (they can add no hypervolume) leave the
pool first, unless none is inside. When the undominated candidates run out within a batch, the batch is cut
short (the next ask draws a new pool). Only if every candidate of an ask is dominated (the model expects no
improvement anywhere in the pool) is its first proposal space-filling, logged at INFO and counted in
``state_dict()["dominated_explorations"]``: an ask must propose something, and exploring is then the only
informative move.

**Interleaved exploration.** One ask in ``explore_every`` (default 5; 0: never) of those with a fitted model
picks, among the candidates the dominance rule leaves open, the one farthest from every known and pending
config (the space-filling distance above) instead of the best EHVI. A forest's spread is small far from its
data, so a region its first trials rated badly (wide models cut by an early ASHA rung, which the miss model
then counts as misses) is never visited again however good it is: a real ttbar sweep under BOPs spent its 5
minutes on tiny encoders above EMD 2 that way. SMAC interleaves a random configuration every few model-based
picks for the same reason. Exploration is bounded in time too: none is due while one is pending or while the
exploration picks have taken more than 1/``explore_every`` of the trial seconds told so far. The farthest
configs are often the slowest (in a real ttbar sweep under ops, conv encoders of 4.5-116 s each, half of them
cut by a rung, took 77 % of the workers' time next to dense ones of 1-4 s: ``benchmarks/time_split.txt``), and counted in asks alone, an
exploration of a 116-s encoder weighs as much as one of a 2-s encoder.
``state_dict()["interleaved_explorations"]`` counts these asks and ``["exploration_time_share"]`` gives
their share of the told trial seconds.

The oracle must price a config as it will be trained: with ``sparsity`` > 0 the final ``bops``,
``nonzero_params`` and ``model_kb`` are those of the pruned model (the econt baseline at sparsity 0.5:
bops 939,588 before pruning, 529,988 with the masks at the target sparsity, which is what
``Autoencoder.before_epoch(E, E)`` applies before the estimate). An oracle that prices the unpruned model
makes sparse candidates look dearer than their trials turn out (the front uses the told values).

Without a cost oracle (``costs=None``) every objective is modelled and candidates are encoded without cost
features; the rest is the same.

How every outcome reaches the strategy (one policy, here):

=============  ==============================================================================================
Outcome        hwnas
=============  ==============================================================================================
Completed      enters the quality model and the front (finite values); a quality of ±inf (diverged) is
               treated as Failed. One flagged ``collapsed`` is also a miss for the miss model (it stays
               quality data: left out, a region where every trial misses would keep the optimistic
               prediction it gets from elsewhere, never corrected since none of its trials trains). Its
               told seconds train the time model.
Pruned         counts as finished for ``n_initial`` and is never proposed again, a miss for the miss model,
               but no quality data and never in the front: its partial value is an early rung's, where
               ECON-T models still sit on the constant-output plateau they leave later (fed as targets,
               these made the model rate every architecture alike). Its told seconds per epoch run train
               the time model.
Failed         enters the quality model with the worst completed quality of each objective: a crashed or
               diverged config is bad, not unknown, so the model learns to avoid its region. Not re-proposed.
Rejected       never trained, not quality data. Its config is never proposed again; with a cost oracle its
               architecture is banned too (a proposal is feasible, so the driver rejected it for a budget or
               a failed conversion, which no training setting changes; an observed one unless the space's
               constraints explain it).
=============  ==============================================================================================

Resume: ``observe`` records the trial exactly as ``tell`` would (model data, front, dedup set), so after a
resume no observed config is proposed again. A completed trial's told costs become its architecture's
cached cost (no oracle call); an architecture known only from failed trials is priced by the oracle when
the model is first fitted (pruned trials are no model data).

The package follows these steps, one module each: ``_features`` (config encoding), ``_models`` (the quality
model and its training data), ``_candidates`` (cost cache, candidate pool, mutations), ``_acquisition``
(EHVI, the dominance rule, batch selection) and ``_strategy`` (the :class:`Strategy` subclass: options,
ask/tell/observe). Importing the package registers the strategy.
"""

from search.strategies.hwnas._acquisition import exact_ehvi, expected_improvement, monte_carlo_ehvi
from search.strategies.hwnas._features import ConfigEncoder
from search.strategies.hwnas._models import MODELS, QualityModel
from search.strategies.hwnas._strategy import DEFAULT_TRAINING_PARAMS, HwnasStrategy

__all__ = [
    "DEFAULT_TRAINING_PARAMS",
    "MODELS",
    "ConfigEncoder",
    "HwnasStrategy",
    "QualityModel",
    "exact_ehvi",
    "expected_improvement",
    "monte_carlo_ehvi",
]
