"""Why short ECON-T trials collapse to a constant output, and whether the training recipe still lets them.

Usage:
  .venv/bin/python benchmarks/collapse.py sample  --out FILE.jsonl [--configs 25] [--space-seed 0] [--seed 0]
                                                   [--draws 13,17] [--variant JSON]
  .venv/bin/python benchmarks/collapse.py ablate  --out FILE.jsonl [--which NAME[,NAME...]]
  .venv/bin/python benchmarks/collapse.py report  FILE.jsonl [FILE.jsonl ...]
  .venv/bin/python benchmarks/collapse.py rerun SAMPLE.jsonl --draws 7,12 --variant '{"config": {"sparsity": 0}}' --out F
  .venv/bin/python benchmarks/collapse.py signal --out FILE.jsonl --configs 20

Data: the real ttbar sample (../shared/data/econt/ttbar_0PU.csv), the task's seeded split of its first
25,000 rows (20,000 training rows, the first 3,000 validation rows scored), loss ``cwmse`` unless a
variant says otherwise, 10 epochs, one torch thread. A trial runs as the sweep runs it
(``torch.manual_seed(seed)``, ``build_model``, ``train`` with the config's lr and batch size,
``task.evaluate``). "Collapsed" means EMD within 10 % of the constant-output model's EMD (the training
mean image predicted for every row) on the same validation rows.

``sample`` draws ``--configs`` configs from the built-in "econt" space with
``np.random.default_rng(space_seed)`` (infeasible draws are skipped, as the sweep records them INFEASIBLE
without training) and trains each (only draws ``--draws`` if given, with ``--variant``). Run it with
``PYTHONPATH`` set to the checkout it measures: the venv's editable install points at the main checkout.
``ablate`` runs controlled comparisons on a few fixed configs, changing one thing at a time (lr x batch size, output activation, init, input normalisation, quantization,
pruning, loss). Each run appends one JSON line (``--tag`` labels it); ``report`` prints the collapse rates,
the before/after pairs of the same draws and the per-run numbers (``dead``: fraction of latent units that
are 0 on every validation row; ``spread``: mean per-cell std across rows of the unit-normalised output).
``constant`` records the constant-output EMD; ``signal`` the latent/output spread at initialisation of the
sample's draws (no training) with the library's init, torch's default init and torch's with zero biases.
The variant ``{"decoder_act": SLOPE}`` swaps the decoder's ReLUs for LeakyReLU(SLOPE) (the decoder is
off-detector, so any activation would do there).

Variants are applied on top of the library as it is checked out, so a group measures the recipe of the
commit it ran on; collapse.txt names the commit of each group. Groups: out_act, lr_batch, sparsity, init,
loss, quant, norm (before the fixes), fix (output x lr schedule x lr/batch), fix2 (lr 3e-2, old vs new
pruning/QAT schedule, telescope), warmup, prune_part (decoder pruned or not), seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from objectives import TrainSettings, emd_hex, from_8x8, get_task, train
from objectives._tasks import TaskData
from spaces import get_preset, get_space

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "econt" / "ttbar_0PU.csv"
ROWS, VAL_ROWS, EPOCHS = 25_000, 3_000, 10
COLLAPSE_RATIO = 0.9  # EMD >= 0.9 * constant-output EMD: "within 10 %"

_DATA_CACHE: dict[str, TaskData] = {}


def load(norm: str = "sumlog2") -> TaskData:
    if norm not in _DATA_CACHE:
        data = get_task("econt").prepare(DATA, rows=ROWS, seed=0, val_rows=VAL_ROWS)
        if norm != "sumlog2":
            # Re-normalise the images (the EMD is shape-only, so the scale does not enter it).
            x = from_8x8(data.train_x)
            v = from_8x8(data.val_x)
            if norm == "max":
                x = x / x.amax(1, keepdim=True)
                v = v / v.amax(1, keepdim=True)
            elif norm == "x8":  # sumlog2 times 8: the same shapes, values 8x larger
                x, v = 8 * x, 8 * v
            else:
                raise SystemExit(f"unknown norm {norm}")
            from objectives import to_8x8

            data = TaskData(
                data.task, data.source, to_8x8(x), to_8x8(v), data.test_x, data.val_raw, data.val_scale
            )
        _DATA_CACHE[norm] = data
    return _DATA_CACHE[norm]


def constant_emd(data: TaskData) -> float:
    mean = from_8x8(data.train_x.mean(0, keepdim=True)).expand(data.val_x.shape[0], -1)
    return emd_hex(data.val_raw, mean.double().numpy()).mean


def _replace_output(model: Any, kind: str) -> None:
    decoder = model.decoder
    for i in reversed(range(len(decoder))):
        if isinstance(decoder[i], nn.Sigmoid):
            decoder[i] = {"none": nn.Identity(), "relu": nn.ReLU(), "softplus": nn.Softplus()}[kind]
            return
    raise SystemExit("no sigmoid to replace")


def _reinit(model: nn.Module, kind: str) -> None:
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            if kind == "kaiming":
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            elif kind == "xavier":
                nn.init.xavier_uniform_(module.weight)
            else:
                raise SystemExit(f"unknown init {kind}")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def _output_bias(model: Any, data: TaskData, kind: str) -> None:
    """Start the output at the training mean charge per cell (``mean``) instead of sigmoid(0) = 0.5."""
    last: Any = [m for m in model.decoder if isinstance(m, nn.Linear | nn.Conv2d | nn.ConvTranspose2d)][-1]
    sigmoid = any(isinstance(m, nn.Sigmoid) for m in model.decoder)
    mean = from_8x8(data.train_x).mean().clamp_min(1e-3)  # the mean charge of a cell
    value = torch.logit(mean) if sigmoid else mean
    with torch.no_grad():
        last.bias.fill_(float(value))
        if kind == "mean_small":
            last.weight.mul_(0.1)


def _old_schedule(model: Any) -> None:
    """The compression schedule before this study (commit 5d2f992): pruning from epoch 2, the target
    reached at ceil(2/3 n); quantizers on from the first step; best epoch picked among all epochs."""

    def scheduled_sparsity(epoch: int, n_epochs: int) -> float:
        full_at = max(1, math.ceil(2 / 3 * n_epochs))
        progress = 1.0 if full_at == 1 else min(1.0, (epoch - 1) / (full_at - 1))
        return float(model.sparsity * (1.0 - (1.0 - progress) ** 3))

    model.scheduled_sparsity = scheduled_sparsity
    model.quantization_enabled = lambda epoch, n_epochs: model.quantized
    model.final_form_epoch = lambda n_epochs: 1


def run(config: dict[str, Any], *, seed: int = 0, variant: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train one config as a trial does; ``variant`` changes one thing (see the module docstring)."""
    variant = dict(variant or {})
    config = {**config, **variant.pop("config", {})}
    data = load(variant.pop("norm", "sumlog2"))
    task = get_task("econt", loss=variant.pop("loss", "cwmse"))
    torch.manual_seed(seed)
    model: Any = task.build_model(config)
    if "out_act" in variant:
        _replace_output(model, variant.pop("out_act"))
    if "init" in variant:
        _reinit(model, variant.pop("init"))
    if variant.pop("schedule", "new") == "old":
        _old_schedule(model)
    if variant.pop("prune", "all") == "encoder":
        model._pruned = [(n, m) for n, m in model._pruned if n.startswith("encoder_")]
    if variant.pop("zero_dead_inputs", False):
        # Weights on the masked image quadrant (always 0 in, so never trained) are zeroed, so magnitude
        # pruning does not keep them in place of trained ones: first dense layer of a conv-less encoder.
        first = next(m for m in model.encoder if isinstance(m, nn.Linear))
        dead = torch.ones(8, 8, dtype=torch.bool)
        dead[:4, :] = False
        dead[4:, :4] = False
        with torch.no_grad():
            first.weight[:, dead.flatten()] = 0.0
    if "enc_bias" in variant:  # hidden biases of encoder and decoder set to a constant
        value = variant.pop("enc_bias")
        with torch.no_grad():
            for m in [*model.encoder.modules(), *model.decoder.modules()]:
                if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear) and m.bias is not None:
                    m.bias.fill_(value)
    if "decoder_act" in variant:  # the decoder is off-detector: any activation is allowed there
        slope = float(variant.pop("decoder_act"))
        for parent in model.decoder.modules():
            for name, child in parent.named_children():
                if isinstance(child, nn.ReLU):
                    setattr(parent, name, nn.LeakyReLU(slope))
    if "out_bias" in variant:
        _output_bias(model, data, variant.pop("out_bias"))
    settings_extra = variant.pop("train", {})
    if variant:
        raise SystemExit(f"unknown variant keys {sorted(variant)}")
    settings = TrainSettings(
        epochs=EPOCHS,
        batch_size=int(config.get("batch_size", 500)),
        lr=float(config.get("lr", 1e-3)),
        seed=seed,
        **settings_extra,
    )
    start = time.perf_counter()
    error = None
    try:
        result = train(model, task, data, settings)
        metrics = task.evaluate(model, data)
        history = [round(h["val_loss"], 5) for h in result.history]
    except Exception as exc:  # a diverged run is a result too
        error, metrics, history = f"{exc.__class__.__name__}: {exc}", {}, []
    seconds = time.perf_counter() - start
    out: dict[str, Any] = {"config": config, "seed": seed, "seconds": round(seconds, 1), "error": error}
    if metrics:
        from objectives._tasks import predict

        pred = from_8x8(predict(model, data.val_x)).clamp_min(0)
        unit = pred / pred.sum(1, keepdim=True).clamp_min(1e-12)
        out.update(
            emd=metrics["emd_mean"],
            val_loss=metrics["val_loss"],
            history=history,
            # spread of the unit-normalised outputs across validation rows (0 for a constant output)
            output_spread=float(unit.std(0).mean()),
            **{k: v for k, v in metrics.items() if k in ("collapsed", "constant_emd")},
        )
        model.eval()
        with torch.no_grad():
            latent = model.encoder(data.val_x)
        model.train()
        # latent units that are 0 on every validation row (a dead ReLU passes no information)
        out["dead_latent"] = round(float((latent.abs().amax(0) == 0).float().mean()), 3)
        if hasattr(model, "weight_sparsity"):
            out["weight_sparsity"] = round(model.weight_sparsity(), 3)
    return out


# -- parts ------------------------------------------------------------------------------------------
def part_sample(args: argparse.Namespace, emit: Callable[[dict[str, Any]], None]) -> None:
    space = get_space("econt")
    rng = np.random.default_rng(args.space_seed)
    done = 0
    draws = 0
    only = {int(d) for d in args.draws.split(",")} if args.draws else None
    while done < args.configs:
        config = space.sample(rng)
        draws += 1
        if not isinstance(space.validate(config), dict):
            emit({"part": "sample", "draw": draws, "infeasible": True, "config": config})
            continue
        done += 1
        if only is not None and draws not in only:
            continue
        row = run(config, seed=args.seed, variant=json.loads(args.variant))
        emit({"part": "sample", "draw": draws, "space_seed": args.space_seed, **row})


BASE = get_preset("econt_baseline")
# A plain dense encoder: 64 pixels -> latent 16, no conv layers.
DENSE = {**BASE, "n_conv": 0}
del (
    DENSE["conv0_filters"],
    DENSE["conv0_kernel"],
    DENSE["conv0_stride"],
    DENSE["conv0_pool"],
    DENSE["decoder"],
)
QUANT = {"quantize": True, "weight_bits": 6, "act_bits": 8, "input_bits": 10, "output_bits": 9}

ABLATIONS: dict[str, list[tuple[str, dict[str, Any], dict[str, Any]]]] = {
    "lr_batch": [
        (f"{name} lr={lr:g} bs={bs}", cfg, {"config": {"lr": lr, "batch_size": bs}})
        for name, cfg in (("base", BASE), ("dense", DENSE))
        for lr in (1e-4, 1e-3, 1e-2)
        for bs in (128, 1024)
    ],
    "out_act": [
        (f"{name} out={act}", cfg, {} if act == "sigmoid" else {"out_act": act})
        for name, cfg in (("base", BASE), ("dense", DENSE))
        for act in ("sigmoid", "none", "relu")
    ],
    "out_bias": [
        (f"{name} out={act} bias={b}", cfg, {"out_bias": b, **({} if act == "sigmoid" else {"out_act": act})})
        for name, cfg in (("base", BASE), ("dense", DENSE))
        for act in ("sigmoid", "none")
        for b in ("mean", "mean_small")
    ],
    "fix": [
        (
            f"{name} lr={lr:g} bs={bs} {vname}",
            cfg,
            {
                **{k: v for k, v in variant.items() if k != "out"},
                "config": {"lr": lr, "batch_size": bs, "output": variant["out"]},
            },
        )
        for name, cfg in (("dense", DENSE), ("base", BASE))
        for lr, bs in ((1e-3, 1024), (1e-2, 128), (1e-3, 500), (1e-2, 1024), (1e-4, 1024))
        for vname, variant in (
            ("sigmoid", {"out": "sigmoid"}),
            ("linear", {"out": "linear"}),
            ("sigmoid+cosine", {"out": "sigmoid", "train": {"lr_schedule": "warmup_cosine"}}),
            ("linear+cosine", {"out": "linear", "train": {"lr_schedule": "warmup_cosine"}}),
        )
    ],
    "fix2": [
        *[
            (
                f"{name} lr=0.03 bs={bs} linear",
                cfg,
                {"config": {"lr": 0.03, "batch_size": bs, "output": "linear"}},
            )
            for name, cfg in (("dense", DENSE), ("base", BASE))
            for bs in (128, 1024)
        ],
        *[
            (
                f"{name} sparsity={sp} {sched} schedule",
                cfg,
                {"schedule": sched, "config": {"sparsity": sp, "output": "linear"}},
            )
            for name, cfg in (("dense", DENSE), ("base", BASE))
            for sp in (0.5, 0.8)
            for sched in ("old", "new")
        ],
        *[
            (
                f"{name} quant w4 {sched} schedule",
                cfg,
                {"schedule": sched, "config": {**QUANT, "weight_bits": 4, "output": "linear"}},
            )
            for name, cfg in (("dense", DENSE), ("base", BASE))
            for sched in ("old", "new")
        ],
        *[
            (f"{name} loss={loss} linear", cfg, {"loss": loss, "config": {"output": "linear"}})
            for name, cfg in (("dense", DENSE), ("base", BASE))
            for loss in ("telescope",)
        ],
    ],
    "warmup": [
        (
            f"{name} lr={lr:g} bs={bs} linear {sched}",
            cfg,
            {"train": {"lr_schedule": sched}, "config": {"lr": lr, "batch_size": bs, "output": "linear"}},
        )
        for name, cfg in (("base", BASE),)
        for lr, bs in ((0.03, 128), (0.01, 1024), (0.01, 128))
        for sched in ("warmup", "constant")
    ],
    "prune_part": [
        (
            f"{name} sparsity={sp} prune {part}",
            cfg,
            {"prune": part, "config": {"sparsity": sp, "output": "linear"}},
        )
        for name, cfg in (("dense", DENSE), ("base", BASE))
        for sp in (0.8,)
        for part in ("encoder",)
    ],
    "init": [
        (f"{name} init={init}", cfg, {} if init == "default" else {"init": init})
        for name, cfg in (("base", BASE), ("dense", DENSE))
        for init in ("default", "kaiming", "xavier")
    ],
    "norm": [
        (f"{name} norm={norm}", cfg, {"norm": norm})
        for name, cfg in (("base", BASE), ("dense", DENSE))
        for norm in ("sumlog2", "max", "x8")
    ],
    "loss": [
        (f"{name} loss={loss}", cfg, {"loss": loss})
        for name, cfg in (("base", BASE), ("dense", DENSE))
        for loss in ("cwmse", "telescope", "mse")
    ],
    "quant": [
        (f"{name} quant w{w}", cfg, {"config": {**QUANT, "weight_bits": w}})
        for name, cfg in (("base", BASE), ("dense", DENSE))
        for w in (4, 8)
    ],
    "sparsity": [
        (f"{name} sparsity={s}", cfg, {"config": {"sparsity": s}})
        for name, cfg in (("base", BASE), ("dense", DENSE))
        for s in (0.0, 0.5, 0.8)
    ],
    "seeds": [(f"{name} seed", cfg, {}) for name, cfg in (("base", BASE), ("dense", DENSE))],
}


def part_signal(args: argparse.Namespace, emit: Callable[[dict[str, Any]], None]) -> None:
    """Signal at initialisation (no training): latent std across 1,000 validation rows of the first
    ``--configs`` feasible draws (float, unpruned), with the library's init and with torch's default."""
    space = get_space("econt")
    rng = np.random.default_rng(args.space_seed)
    x = load().val_x[:1000]
    draw = done = 0
    while done < args.configs:
        config = space.sample(rng)
        draw += 1
        if not isinstance(space.validate(config), dict):
            continue
        done += 1
        for init in ("library", "torch_default", "zero_bias"):
            torch.manual_seed(args.seed)
            model: Any = get_task("econt").build_model({**config, "quantize": False, "sparsity": 0.0})
            if init != "library":
                for module in model.modules():
                    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
                        module.reset_parameters()  # torch's default init
                        if init == "zero_bias" and module.bias is not None:
                            nn.init.zeros_(module.bias)
            with torch.no_grad():
                latent = model.encoder(x)
                out = from_8x8(model(x))
            emit(
                {
                    "part": "signal",
                    "draw": draw,
                    "init": init,
                    "latent_std": float(latent.std(0).mean()),
                    "dead_latent": float((latent.amax(0) == 0).float().mean()),
                    "output_std": float(out.std(0).mean()),
                }
            )


def part_rerun(args: argparse.Namespace, emit: Callable[[dict[str, Any]], None]) -> None:
    """Rerun draws ``--draws`` of a sample file (``files[0]``) with one ``--variant`` (JSON, as in ABLATIONS);
    how the [diag*] and [*remaining*] groups of collapse.txt were made."""
    rows = [json.loads(line) for line in Path(args.files[0]).read_text().splitlines() if line.strip()]
    by_draw = {r["draw"]: r for r in rows if r.get("part") == "sample" and not r.get("infeasible")}
    variant = json.loads(args.variant)
    for draw in (int(d) for d in args.draws.split(",")):
        row = run(by_draw[draw]["config"], seed=args.seed, variant=dict(variant))
        emit({"part": "ablate", "group": "rerun", "label": f"draw{draw} {args.variant}", **row})


def part_ablate(args: argparse.Namespace, emit: Callable[[dict[str, Any]], None]) -> None:
    names = args.which.split(",") if args.which else list(ABLATIONS)
    for name in names:
        for label, config, variant in ABLATIONS[name]:
            seeds = range(3) if name == "seeds" else [args.seed]
            for seed in seeds:
                emit(
                    {
                        "part": "ablate",
                        "group": name,
                        "label": label,
                        **run(config, seed=seed, variant=variant),
                    }
                )


def header() -> str:
    import datetime
    import os
    import platform

    import brevitas

    return (
        f"# {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores "
        f"(shared), load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; Python {platform.python_version()}, "
        f"torch {torch.__version__}, brevitas {brevitas.__version__}, numpy {np.__version__}\n"
        f"# data: {DATA.name}, first {ROWS} rows, seeded split (seed 0): 20,000 training rows, "
        f"{VAL_ROWS} validation rows scored; {EPOCHS} epochs; loss cwmse unless stated; one torch thread"
    )


def part_report(files: list[str]) -> None:
    print(header())
    rows = [json.loads(line) for f in files for line in Path(f).read_text().splitlines() if line.strip()]
    const = {r["norm"]: r["constant_emd"] for r in rows if r.get("part") == "constant"}
    c = const.get("sumlog2") or constant_emd(load())
    print(
        f"constant-output EMD (training mean image, {VAL_ROWS} val rows): {c:.3f}; collapse: EMD >= {COLLAPSE_RATIO * c:.3f}"
    )
    trained = [r for r in rows if r.get("part") == "sample" and not r.get("infeasible")]
    for tag in sorted({r.get("tag", "") for r in trained}):
        group = [r for r in trained if r.get("tag", "") == tag]
        ok = [r for r in group if r["error"] is None]
        collapsed = [r for r in ok if r["emd"] >= COLLAPSE_RATIO * c]
        print(
            f"sample {tag or '(untagged)'}: {len(group)} feasible trained, {len(group) - len(ok)} failed, "
            f"{len(collapsed)} collapsed ({100 * len(collapsed) / max(1, len(ok)):.0f} %)"
        )
        for r in group:
            cfg = r["config"]
            brief = (
                f"conv{cfg['n_conv']} dense{cfg['n_dense']} lat{cfg['latent']} lr={cfg['lr']:.2g} "
                f"bs={cfg['batch_size']} q={int(cfg['quantize'])} sp={cfg['sparsity']:.2f}"
            )
            emd = (
                "FAILED " + str(r["error"])[:60]
                if r["error"]
                else f"EMD {r['emd']:.2f} val {r['val_loss']:.4f} spread {r['output_spread']:.4f} dead {r.get('dead_latent', float('nan')):.2f}"
            )
            print(f"  draw {r['draw']:3d} {brief:60s} {emd} {r['seconds']:.0f}s")
    by_tag: dict[str, dict[int, dict[str, Any]]] = {}
    for r in trained:
        by_tag.setdefault(r.get("tag", ""), {})[r["draw"]] = r
    for later in sorted(t for t in by_tag if t != "before" and "before" in by_tag):
        print(
            f"paired draws, before vs {later} (same space seed; lr: the same uniform draw on each log range):"
        )
        print("  draw  sparsity  quant  lr before -> after   EMD before -> after")
        for draw in sorted(set(by_tag["before"]) & set(by_tag[later])):
            b, a = by_tag["before"][draw], by_tag[later][draw]
            print(
                f"  {draw:4d}  {a['config']['sparsity']:8.2f}  {int(a['config']['quantize']):5d}  "
                f"{b['config']['lr']:.2g} -> {a['config']['lr']:.2g}      {b['emd']:5.2f} -> {a['emd']:5.2f}"
                + ("   (collapsed after)" if a["emd"] >= COLLAPSE_RATIO * c else "")
            )
    signal = [r for r in rows if r.get("part") == "signal"]
    if signal:
        print("signal at init (float, unpruned; latent std across rows / output std across rows):")
        for draw in sorted({r["draw"] for r in signal}):
            cells = {r["init"]: r for r in signal if r["draw"] == draw}
            print(
                f"  draw {draw:3d}  "
                + "  ".join(
                    f"{k} {v['latent_std']:.4f}/{v['output_std']:.5f} dead {v['dead_latent']:.2f}"
                    for k, v in cells.items()
                )
            )
    for r in rows:
        if r.get("part") == "ablate":
            emd = (
                "FAILED " + str(r["error"])[:60]
                if r["error"]
                else f"EMD {r['emd']:.2f} val {r['val_loss']:.4f} spread {r['output_spread']:.4f} dead {r.get('dead_latent', float('nan')):.2f} hist {r['history'][0]:.4f}->{r['history'][-1]:.4f}"
            )
            print(f"  [{r.get('tag', '')}:{r['group']}] {r['label']:28s} seed {r['seed']} {emd}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("part", choices=("sample", "ablate", "report", "constant", "signal", "rerun"))
    parser.add_argument("files", nargs="*")
    parser.add_argument("--out")
    parser.add_argument("--tag", default="")
    parser.add_argument("--configs", type=int, default=25)
    parser.add_argument("--space-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--which", default="")
    parser.add_argument("--draws", default="")
    parser.add_argument("--variant", default="{}")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.part == "report":
        part_report(args.files)
        return
    if not DATA.is_file():
        raise SystemExit(f"real sample not found: {DATA}")
    out = open(args.out, "a") if args.out else sys.stdout  # noqa: SIM115

    def emit(row: dict[str, Any]) -> None:
        row["tag"] = args.tag
        out.write(json.dumps(row, default=float) + "\n")
        out.flush()

    if args.part == "constant":
        for norm in ("sumlog2",):
            emit({"part": "constant", "norm": norm, "constant_emd": constant_emd(load(norm))})
    elif args.part == "sample":
        part_sample(args, emit)
    elif args.part == "signal":
        part_signal(args, emit)
    elif args.part == "rerun":
        part_rerun(args, emit)
    else:
        part_ablate(args, emit)


if __name__ == "__main__":
    main()
