"""The registry of model families: a name -> a builder ``(config, ModelInput) -> Autoencoder``.

A task (in ``objectives``) names its family and declares its `ModelInput`; the family knows no task. The
built-in families register here through :func:`register_family`, the same function a plugin family calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._autoencoders import CONV_FAMILY, DENSE_FAMILY, ConvAutoencoder, DenseAutoencoder
from ._errors import SpaceError
from ._models import Autoencoder, ModelInput
from ._nets import DENSE_NET_FAMILY, STRIP_FAMILY, DenseNet, StripCNN

FamilyBuilder = Callable[[Mapping[str, Any], ModelInput], Autoencoder]
# The compression keys at the values where every family builds the model uncompressed (their defaults).
UNCOMPRESSED: Mapping[str, Any] = {"quantize": False, "sparsity": 0.0}

_FAMILIES: dict[str, FamilyBuilder] = {}


def register_family(name: str, builder: FamilyBuilder) -> None:
    """Make ``builder`` buildable as family ``name``; SpaceError if the name is taken or not an identifier."""
    if not isinstance(name, str) or not name.isidentifier():
        raise SpaceError(f"family name must be an identifier like 'conv_autoencoder', got {name!r}")
    if name in _FAMILIES:
        raise SpaceError(f"model family {name!r} is already registered")
    if not callable(builder):
        raise SpaceError(f"family {name!r}: builder must be callable, got {builder!r}")
    _FAMILIES[name] = builder


def family_names() -> tuple[str, ...]:
    """Names of the registered model families, in registration order."""
    return tuple(_FAMILIES)


def build_model(family: str, config: Mapping[str, Any], model_input: ModelInput) -> Autoencoder:
    """The model of family ``family`` a (canonical) config describes, for inputs as ``model_input`` says.

    Families: ``conv_autoencoder`` (input (C, S, S)) with keys ``n_conv``, ``conv<i>_filters/_kernel/
    _stride/_pool``, ``n_dense`` (default 0), ``dense<i>_units``, ``latent``, ``decoder`` (default
    "convtranspose"); ``dense_autoencoder`` (input (S,)) with ``n_hidden`` (>= 1), ``hidden<i>_units``,
    ``latent``; ``strip_cnn`` (input (C, layers, strips)) and ``dense_net`` (input (F,)), whole networks
    ending in ``outputs`` linear values (see `spaces._nets`). Compression keys (all): ``quantize`` (default false) with ``weight_bits``, ``act_bits``,
    ``output_bits``, ``input_bits`` (default ``model_input.bits``); ``sparsity`` (default 0); ``l1``
    (default 0). Other keys (lr, batch_size, ...) are ignored. Raises SpaceError for an unknown family, an
    input shape the family cannot take, a missing or malformed key, or an infeasible conv stack (which
    ``Space.validate`` reports as Infeasible before it gets here).
    """
    if family not in _FAMILIES:
        raise SpaceError(f"unknown model family {family!r}; allowed: {', '.join(_FAMILIES)}")
    if not isinstance(config, Mapping):
        raise SpaceError(f"build_model({family!r}): config must be a mapping, got {config!r}")
    if not isinstance(model_input, ModelInput):
        raise SpaceError(f"build_model({family!r}): model_input must be a ModelInput, got {model_input!r}")
    return _FAMILIES[family](config, model_input)


register_family(CONV_FAMILY, ConvAutoencoder)
register_family(DENSE_FAMILY, DenseAutoencoder)
register_family(STRIP_FAMILY, StripCNN)
register_family(DENSE_NET_FAMILY, DenseNet)
