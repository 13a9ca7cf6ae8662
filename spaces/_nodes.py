"""Node pruning to an exact width (AutoPruner-style): a gate per node and the surgery that removes nodes.

A layer with a ``<layer>_keep`` key (``conv<i>``, ``dense<i>``, ``hidden<i>``; an integer count or a float fraction) is followed by a
:class:`NodeGate`, ``g_i = x_i * sigmoid(sharpness * w_i)`` per output node (a conv layer's filters). While
the gates are in the network the training loop adds :func:`pruner_loss` to the task loss: it pulls each
layer's mean gate to ``keep / width`` while the sharpness rises, so the gates become 0 or 1 and the task
loss decides which nodes stay open. :func:`shrink` then keeps exactly ``keep`` nodes per gated layer (the
largest ``w_i``), folds each kept gate value into its layer's weights and bias and drops the other nodes'
rows and the next layer's matching inputs: a smaller network with the same outputs as the gated one with
its gates hardened (kept nodes at their gate value, the others at 0).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

import torch
from torch import nn

from ._errors import SpaceError

# Sharpness of the gates: rises geometrically from 1 to _FINAL_SHARPNESS over the gating epochs, so the
# sigmoids start smooth (every node gets gradient) and end as near step functions.
_FINAL_SHARPNESS = 50.0
WEIGHTED = (nn.Conv2d, nn.Linear)  # Brevitas' QuantConv2d and QuantLinear are subclasses


def keep_count(config: Mapping[str, Any], layer: str, width: int, family: str) -> int | None:
    """The nodes layer ``layer`` keeps after node pruning: ``<layer>_keep`` is an integer count 1..width or
    a float fraction in (0, 1] of ``width`` (rounded, at least 1); None without the key. SpaceError
    otherwise."""
    key = f"{layer}_keep"
    if key not in config:
        return None
    value = config[key]
    allowed = f"allowed: an integer count 1..{width} or a fraction in (0, 1]"
    if isinstance(value, float) and 0 < value <= 1:
        return max(1, round(value * width))
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= width:
        problem = (
            "larger than the layer's"
            if isinstance(value, int | float) and value > width
            else "not a count of"
        )
        raise SpaceError(f"build_model({family!r}): {key}={value!r} is {problem} {width} nodes; {allowed}")
    return value


class NodeGate(nn.Module):
    """Scales node ``i`` of its input (dim 1: a dense feature or a conv channel) by
    ``sigmoid(sharpness * logits[i]) * mask[i]``; ``mask`` is all ones until :meth:`harden`."""

    mask: torch.Tensor

    def __init__(self, width: int, keep: int) -> None:
        super().__init__()
        self.width = width
        self.keep = keep
        # Zero logits: every gate starts at 1/2 and the first steps are decided by the task loss alone.
        self.logits = nn.Parameter(torch.zeros(width))
        self.register_buffer("mask", torch.ones(width))
        self.sharpness = 1.0

    def gates(self) -> torch.Tensor:
        return torch.sigmoid(self.sharpness * self.logits) * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gates().view(1, -1, *([1] * (x.dim() - 2)))

    def kept(self) -> torch.Tensor:
        """Indices (ascending) of the ``keep`` nodes with the largest logits (ties: the lower index)."""
        order = torch.argsort(-self.logits.detach(), stable=True)
        return torch.sort(order[: self.keep]).values

    def harden(self) -> None:
        """Close every gate but the kept ones exactly (mask 0), so the network is the pruned one."""
        mask = torch.zeros(self.width)
        mask[self.kept()] = 1.0
        self.mask.copy_(mask)

    def set_progress(self, epoch: int, n_epochs: int) -> None:
        """The sharpness of 1-based gating ``epoch`` of ``n_epochs``: 1 at the first, 50 at the last."""
        self.sharpness = _FINAL_SHARPNESS ** ((epoch - 1) / max(1, n_epochs - 1))


def gates_of(module: nn.Module) -> list[NodeGate]:
    return [m for m in module.modules() if isinstance(m, NodeGate)]


def pruner_loss(gates: list[NodeGate]) -> torch.Tensor:
    """Sum over the gated layers of (mean gate - keep / width)^2, AutoPruner's target-ratio penalty."""
    return sum(((gate.gates().mean() - gate.keep / gate.width) ** 2 for gate in gates), torch.zeros(()))


def shrink(encoder: nn.Sequential, make_like: Callable[[nn.Module, int, int], nn.Module]) -> nn.Sequential:
    """A new ``encoder`` without its gates: each gated layer reduced to its kept nodes (gate values folded
    into its rows), the layer after it to the matching inputs (across a Flatten: each kept channel's block
    of pixels). ``make_like(layer, in, out)`` builds a fresh layer of ``layer``'s kind and widths in/out
    (quantizers included); the other modules are reused. The hardened gated encoder and the result compute
    the same function (up to float rounding). The input encoder is not changed."""
    modules = list(encoder)
    out: list[nn.Module] = []
    kept_in: torch.Tensor | None = None  # kept outputs of the last gated layer, which the next layer reads
    width_in = 0  # that layer's full width
    for index, module in enumerate(modules):
        if isinstance(module, NodeGate):
            continue  # folded into the layer before it
        if not isinstance(module, WEIGHTED):
            out.append(module)
            continue
        weight = module.weight.detach()
        bias = None if module.bias is None else module.bias.detach()
        if kept_in is not None:
            columns = kept_in
            if isinstance(module, nn.Linear) and weight.shape[1] != width_in:  # after a Flatten
                pixels = weight.shape[1] // width_in
                columns = (kept_in[:, None] * pixels + torch.arange(pixels)).flatten()
            weight = weight[:, columns]
        gate = modules[index + 1] if index + 1 < len(modules) else None
        kept_in = None
        if isinstance(gate, NodeGate):
            rows = gate.kept()
            scale = torch.sigmoid(gate.sharpness * gate.logits.detach())[rows]
            weight = weight[rows] * scale.view(-1, *([1] * (weight.dim() - 1)))
            bias = None if bias is None else bias[rows] * scale
            kept_in, width_in = rows, gate.width
        layer = make_like(module, weight.shape[1], weight.shape[0])
        target = cast(nn.Conv2d | nn.Linear, layer)
        with torch.no_grad():
            target.weight.copy_(weight)
            if bias is not None and target.bias is not None:
                target.bias.copy_(bias)
        out.append(layer)
    return nn.Sequential(*out)


def widths(encoder: nn.Module) -> list[int]:
    """Output nodes of every Conv/Linear layer of ``encoder``, in order (filters or units)."""
    return [
        m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
        for m in encoder.modules()
        if isinstance(m, WEIGHTED)
    ]
