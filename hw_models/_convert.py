"""torch / Brevitas model -> hls4ml ModelGraph through hls4ml's PyTorch frontend."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeGuard, cast

import hls4ml
import torch
from hls4ml.converters.pytorch_to_hls import (
    get_supported_pytorch_layers,
    layer_name_map,
    register_pytorch_layer_handler,
)
from hls4ml.model import ModelGraph
from hls4ml.utils.torch import CustomFXTracer
from torch import fx, nn

from ._brevitas import SUPPORTED_BREVITAS, HwnasQuantCast, build_mirror, is_quantized
from ._errors import HWError, UnsupportedLayerError
from ._settings import DISTRIBUTED_ARITHMETIC, HWSettings, parse_precision

logger = logging.getLogger(__name__)

FLOAT_DA_REFUSED = (
    "strategy distributed_arithmetic needs a quantized (Brevitas) model: da4ml turns fixed-point weights "
    "into adder trees, and a float model's wide default types made one conversion run for over 5 minutes; "
    "quantize the model, or choose Latency or Resource"
)
# Layer attribute: (weight, bias or None) of a distributed-arithmetic layer, whose own weights hls4ml deletes.
_KERNEL_WEIGHTS = "hwnas_kernel_weights"
# hls4ml drops these modules from the graph.
_SKIPPED_MODULES = ("Dropout", "Sequential")
# Modules that act element by element: a row permutation of their input commutes with them.
_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.Sigmoid, nn.Tanh, nn.Dropout, HwnasQuantCast)
_PLAIN_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Linear)
# hls4ml handler names that are functions or internal, not module types a user writes.
_NOT_MODULE_TYPES = ("Constant", "Batch_norm", "View", HwnasQuantCast.__name__)


def supported_layer_types() -> tuple[str, ...]:
    """Module types the conversion accepts (hls4ml's PyTorch frontend plus the mirrored Brevitas layers)."""
    hls4ml_modules = [
        name for name in get_supported_pytorch_layers() if name[0].isupper() and name not in _NOT_MODULE_TYPES
    ]
    brevitas_modules = [cls.__name__ for cls in SUPPORTED_BREVITAS]
    return tuple(sorted({*hls4ml_modules, *_SKIPPED_MODULES, *brevitas_modules}))


def to_hls4ml(
    model: nn.Module,
    input_shape: Sequence[int],
    settings: HWSettings | None = None,
    *,
    output_dir: str | None = None,
    precisions: Mapping[str, Mapping[str, str]] | None = None,
) -> ModelGraph:
    """Convert a float torch model or a Brevitas-quantized model into an hls4ml ModelGraph.

    Float models go through hls4ml's PyTorch frontend with every tensor at ``settings.default_precision``
    unless ``precisions`` sets it (see :func:`profile_precisions`).
    Brevitas models go through the bit-exact "mirror" route: a plain torch twin holding the quantized
    weights, with each layer's precision taken from its power-of-two quantizers (see ``_brevitas``). The
    graph is channels-last inside (``ChannelsLastConversion='internal'``): a (C, H, W) input is fed to
    ``predict`` as (H, W, C). A Linear whose output is un-flattened by ``view`` into a feature map gets its
    rows permuted into (H, W, C) order, which hls4ml's reshape expects. Nothing is written to disk until
    ``write()``/``compile()`` is called on the result.

    Args:
        model: the on-chip part (e.g. an autoencoder's ``encoder``); it is not modified.
        input_shape: torch shape of one sample without batch, e.g. (1, 8, 8) or (48,).
        settings: hardware settings; ``HWSettings()`` when None.
        output_dir: project directory for a later write/compile; a new temporary directory when None.
        precisions: hls4ml layer name -> tensor ("result", "weight", "bias", "accum") -> precision string,
            for a float model only (a Brevitas model's types are its quantizers').

    Raises:
        UnsupportedLayerError: a layer or operation hls4ml cannot convert (named, with the supported types).
        HWError: a bad input shape, a quantizer that cannot be bit-exact, or a conversion failure.
    """
    settings = check_settings(settings)
    if output_dir is not None:
        return convert(model, input_shape, settings, output_dir, precisions)
    directory = tempfile.mkdtemp(prefix="hwnas-hls4ml-")
    try:
        return convert(model, input_shape, settings, directory, precisions)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def convert(
    model: nn.Module,
    input_shape: Sequence[int],
    settings: HWSettings,
    output_dir: str,
    precisions: Mapping[str, Mapping[str, str]] | None = None,
) -> ModelGraph:
    """:func:`to_hls4ml` with an explicit output directory (which conversion itself never creates)."""
    shape = _check_input_shape(input_shape)
    if not isinstance(model, nn.Module):
        raise HWError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if CustomFXTracer().is_leaf_module(model, ""):
        model = nn.Sequential(model)  # a bare layer: FX would trace into its functional form
    _ensure_quant_cast_handler()
    quantized = is_quantized(model)
    if settings.strategy == DISTRIBUTED_ARITHMETIC and not quantized:
        raise HWError(FLOAT_DA_REFUSED)
    if quantized and precisions:
        raise HWError("precisions apply to float models; a Brevitas model's types are its quantizers'")
    twin, quantizer_precisions = model, {}
    if quantized:  # unsupported Brevitas layers are named while mirroring
        mirror = build_mirror(model, shape)
        twin, quantizer_precisions = mirror.twin, mirror.precisions
    if any(_is_batch_unflatten(module) for module in twin.modules()):
        if twin is model:  # never modify the caller's float model
            twin = copy.deepcopy(model)
        _unflatten_as_view(twin)
    graph = _trace(twin)
    _check_supported(graph, twin)
    unflattened = _unflattened_linears(graph, twin)
    if unflattened:
        if twin is model:  # never modify the caller's float model
            twin = copy.deepcopy(model)
        _permute_rows_channels_last(twin, unflattened)

    try:
        with hls4ml_output():
            config = hls4ml.utils.config_from_pytorch_model(
                twin,
                input_shape=shape,
                granularity="name",
                backend=settings.backend,
                default_precision=settings.default_precision,
                default_reuse_factor=settings.reuse_factor,
                channels_last_conversion="internal",
            )
            layer_configs: dict[str, dict[str, Any]] = config["LayerName"]
            if quantized:
                for name, layer_precisions in _quantized_precisions(
                    graph, twin, quantizer_precisions
                ).items():
                    layer_configs[name]["Precision"].update(layer_precisions)
            else:
                for layer_config in layer_configs.values():
                    precision = layer_config.get("Precision", {})
                    if precision.get("result") == "auto":
                        precision["result"] = settings.default_precision
                _set_precisions(layer_configs, precisions or {})

            def convert_as(strategy: str) -> ModelGraph:
                config["Model"]["Strategy"] = strategy
                return hls4ml.converters.convert_from_pytorch_model(
                    twin,
                    hls_config=copy.deepcopy(config),
                    output_dir=output_dir,
                    backend=settings.backend,
                    io_type=settings.io_type,
                    part=settings.part,
                    clock_period=settings.clock_period_ns,
                )

            if settings.strategy != DISTRIBUTED_ARITHMETIC:
                return convert_as(settings.strategy)
            # hls4ml's distributed-arithmetic templates delete each kernel's weights from the graph (the
            # generated adder trees hold them); the cost model needs them, so a Latency conversion of the
            # same model lends its weight tensors, layer by layer.
            lender = {layer.name: layer for layer in convert_as("Latency").get_layers()}
            graph = convert_as(settings.strategy)
            for layer in graph.get_layers():
                if "weight" not in layer.weights and "weight" in lender[layer.name].weights:
                    layer.set_attr(_KERNEL_WEIGHTS, kernel_weights(lender[layer.name]))
            return graph
    except HWError:
        raise
    except Exception as error:  # hls4ml raises bare Exception for everything it rejects
        raise HWError(f"hls4ml could not convert the model: {error}") from error


def kernel_weights(layer: Any) -> tuple[Any, Any]:
    """(weight, bias) WeightVariables of a converted Dense/Conv layer; bias None when the layer has none."""
    kept = layer.get_attr(_KERNEL_WEIGHTS)
    if kept is not None:
        return cast(tuple[Any, Any], kept)
    bias = layer.get_weights("bias") if layer.get_attr("bias_data") is not None else None
    return layer.get_weights("weight"), bias


def _set_precisions(
    layer_configs: dict[str, dict[str, Any]], precisions: Mapping[str, Mapping[str, str]]
) -> None:
    for name, tensors in precisions.items():
        if name not in layer_configs:
            raise HWError(
                f"precisions name layer {name!r}, which the model lacks; its layers: {', '.join(layer_configs)}"
            )
        for tensor, text in tensors.items():
            try:
                parse_precision(text)
            except HWError as error:
                raise HWError(f"layer {name!r}, {tensor}: {error}") from None
            layer_configs[name].setdefault("Precision", {})[tensor] = text


def check_settings(settings: HWSettings | None) -> HWSettings:
    """`settings`, or the defaults when None.

    Raises:
        HWError: `settings` is not an HWSettings.
    """
    if settings is None:
        return HWSettings()
    if not isinstance(settings, HWSettings):
        raise HWError(f"settings must be an HWSettings, got {type(settings).__name__}")
    return settings


def _check_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    valid = (
        isinstance(input_shape, Sequence)
        and 1 <= len(input_shape) <= 3
        and all(isinstance(dim, int) and not isinstance(dim, bool) and dim >= 1 for dim in input_shape)
    )
    if not valid:
        raise HWError(
            f"input_shape = {input_shape!r} is invalid; allowed: 1 to 3 positive integers without the batch "
            "dimension, e.g. (48,) or (1, 8, 8)"
        )
    return tuple(input_shape)


def _trace(model: nn.Module) -> fx.Graph:
    try:
        return CustomFXTracer().trace(model)
    except Exception as error:
        raise UnsupportedLayerError(
            f"the model cannot be traced by torch.fx, which hls4ml's PyTorch frontend needs: {error}"
        ) from error


def _operation_name(node: fx.Node) -> str:
    """hls4ml's name for a function or method call (e.g. 'relu_1' -> 'ReLU')."""
    name = re.sub(r"_\d+$", "", node.name)
    return layer_name_map.get(name, name)


def _owner(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack), "") if stack else ""


def _check_supported(graph: fx.Graph, model: nn.Module) -> None:
    """Name the first module or operation of a plain torch graph that hls4ml's PyTorch frontend rejects."""
    modules = dict(model.named_modules())
    supported = set(get_supported_pytorch_layers()) | set(_SKIPPED_MODULES)
    for node in graph.nodes:
        if node.op == "call_module":
            name = type(modules[node.target]).__name__
            if name in supported:
                continue
            hint = (
                " (only the on-chip part is converted: pass e.g. model.encoder)"
                if "decoder" in node.target
                else ""
            )
            raise UnsupportedLayerError(
                f"layer '{node.target}' ({name}) cannot be converted by hls4ml{hint}; supported layer types: "
                f"{', '.join(supported_layer_types())}"
            )
        if node.op in ("call_function", "call_method"):
            operation = _operation_name(node)
            if operation == "getitem" or operation in supported:
                continue
            owner = _owner(node)
            where = f" in '{owner}'" if owner else ""
            functions = sorted(name for name in get_supported_pytorch_layers() if not name[0].isupper())
            raise UnsupportedLayerError(
                f"operation '{operation}'{where} cannot be converted by hls4ml; supported layer types: "
                f"{', '.join(supported_layer_types())}; supported functions: {', '.join([*functions, 'view'])}"
            )


class _View(nn.Module):
    """``x.view(-1, *shape)``: an ``nn.Unflatten(1, shape)`` in a form hls4ml converts (a reshape)."""

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        self.shape = tuple(int(dim) for dim in shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(-1, *self.shape)


def _is_batch_unflatten(module: nn.Module) -> TypeGuard[nn.Unflatten]:
    return isinstance(module, nn.Unflatten) and module.dim == 1


def _unflatten_as_view(model: nn.Module) -> None:
    """Replace every ``Unflatten(1, shape)`` (e.g. a dense decoder's output image) by a `_View`."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if _is_batch_unflatten(child):
                setattr(parent, name, _View(child.unflattened_size))


def _unflattened_linears(graph: fx.Graph, model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    """(Linear path, channels-first feature shape) for every Linear whose output `view` turns into a map."""
    modules = dict(model.named_modules())
    found = []
    for node in graph.nodes:
        if node.op != "call_method" or node.target != "view":
            continue
        dims = (
            node.args[1] if len(node.args) == 2 and isinstance(node.args[1], list | tuple) else node.args[1:]
        )
        if len(dims) < 3 or not all(isinstance(dim, int) for dim in dims):
            continue  # flattening, or a shape hls4ml rejects anyway
        source = node.args[0]
        while source.op == "call_module" and isinstance(modules[source.target], _ELEMENTWISE):
            source = source.args[0]
        linear = modules[source.target] if source.op == "call_module" else None
        if isinstance(linear, nn.Linear):
            feature_dims = list(dims[1:])
            if -1 in feature_dims:
                known = math.prod(dim for dim in feature_dims if dim != -1)
                feature_dims[feature_dims.index(-1)] = linear.out_features // known
            found.append((str(source.target), tuple(feature_dims)))
    return found


def _permute_rows_channels_last(model: nn.Module, unflattened: list[tuple[str, tuple[int, ...]]]) -> None:
    """hls4ml reshapes a flat vector straight into channels-last (H, W, C) without the transpose a
    channels-first `view` implies, so each such Linear must emit its outputs in (H, W, C) order."""
    for path, feature_shape in unflattened:
        linear = model.get_submodule(path)
        if not isinstance(linear, nn.Linear):
            continue
        channels_first = torch.arange(linear.out_features).reshape(feature_shape)
        order = channels_first.permute(*range(1, len(feature_shape)), 0).reshape(-1)
        with torch.no_grad():
            linear.weight.copy_(linear.weight[order])
            if linear.bias is not None:
                linear.bias.copy_(linear.bias[order])
        logger.debug("permuted the rows of '%s' into channels-last order of %s", path, feature_shape)


def _quantized_precisions(
    graph: fx.Graph, twin: nn.Module, precisions: dict[str, dict[str, str]]
) -> dict[str, dict[str, str]]:
    """hls4ml layer name -> precision overrides, with each quantizer folded into the layer that feeds it
    where hls4ml would otherwise drop or double-round it."""
    modules = dict(twin.named_modules())
    by_name = {
        node.name: dict(precisions[node.target])
        for node in graph.nodes
        if node.op == "call_module" and node.target in precisions
    }
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], HwnasQuantCast):
            continue
        result = by_name[node.name]["result"]
        source = node.args[0]
        if source.op == "placeholder":
            by_name[source.name] = {"result": result}
            continue
        if source.op != "call_module":
            continue
        feeder = modules[source.target]
        # hls4ml merges a 'linear' activation into a Dense/Conv/ReLU of unset precision and loses the
        # cast, so the quantizer becomes that layer's output type (the same single rounding).
        folds = isinstance(feeder, _PLAIN_WEIGHTED) or (
            isinstance(feeder, nn.ReLU) and "result" not in by_name.get(source.name, {})
        )
        if not folds:
            continue
        if len(source.users) > 1:
            raise HWError(
                f"layer '{source.target}' feeds a quantizer and other layers; its output cannot be quantized "
                "for one consumer only (put the quantizer before the branch)"
            )
        by_name.setdefault(source.name, {})["result"] = result
    for node in graph.nodes:
        if node.op == "placeholder" and node.name not in by_name:
            logger.warning(
                "input '%s' has no quantizer (put a QuantIdentity first): it is cast to the default "
                "precision and the hls4ml model cannot match Brevitas bit-exactly",
                node.name,
            )
        if (
            node.op == "call_module"
            and isinstance(modules[node.target], nn.ReLU)
            and node.name not in by_name
        ):
            logger.warning(
                "plain ReLU '%s' in a quantized model takes the default precision; use QuantReLU for a "
                "bit-exact conversion",
                node.target,
            )
    return by_name


def _ensure_quant_cast_handler() -> None:
    """Teach hls4ml's PyTorch frontend the QuantIdentity stand-in (a 'linear' activation); hls4ml's
    handler registry refuses a second registration, hence the check."""
    if HwnasQuantCast.__name__ in get_supported_pytorch_layers():
        return

    def parse_quant_cast(
        operation: str,
        layer_name: str,
        input_names: list[str],
        input_shapes: list[list[int]],
        *_: object,
    ) -> tuple[dict[str, Any], list[int]]:
        layer = {
            "class_name": "Activation",
            "activation": "linear",
            "name": layer_name,
            "inputs": input_names,
        }
        return layer, list(input_shapes[0])

    register_pytorch_layer_handler(HwnasQuantCast.__name__, parse_quant_cast)


@contextlib.contextmanager
def hls4ml_output() -> Iterator[None]:
    """hls4ml prints its progress and warns about adjustments it makes (the graph shows the result); a
    library must stay quiet, so both go to the debug log."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        if buffer.getvalue().strip():
            logger.debug("hls4ml: %s", buffer.getvalue().strip())
        for warning in caught:
            logger.debug("hls4ml warning: %s", warning.message)
