"""The sweep config: a frozen, typed YAML document validated once at the edge and stored verbatim.

Example (examples/quick.yaml)::

    name: econt-quick
    task: {name: econt, data: synthetic, rows: 20000, val_rows: 2000}
    space: econt
    objectives: [{emd_mean: minimize}, {bops: minimize}]
    budgets: ["bops <= 2e6"]
    strategy: {name: optuna-tpe}
    trials: 24
    epochs: 5
    executor: {kind: local, workers: 2}
    store: sqlite:///hwnas.db
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from search._types import Direction, Objective

# Objectives the trial computes from the whole model (not the encoder's hardware cost, not a task metric).
MODEL_METRICS = ("model_kb",)


class ConfigError(ValueError):
    """The sweep config is invalid; the message names every bad key and what is allowed."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskConfig(_Frozen):
    """The task: a registered name (built-in or entry point) or a ``plugin`` spec (its name follows)."""

    name: str
    plugin: str | None = Field(
        None, description="a user task: 'path/to/file.py:ClassName' or 'module:ClassName' (see docs/tasks.md)"
    )
    data: str = Field("synthetic", description="'synthetic' or the path of a CSV/NPY data file")
    rows: int = Field(20_000, gt=0, description="rows generated or read")
    val_rows: int | None = Field(2_000, gt=0, description="validation rows scored per trial (None: all)")
    loss: str | None = Field(None, description="training loss; None: the task's default_loss")

    @model_validator(mode="before")
    @classmethod
    def _load_plugin(cls, data: Any) -> Any:
        # A plugin is imported and registered before the name is checked; its task name fills `name`.
        if not isinstance(data, dict) or data.get("plugin") is None:
            return data
        from objectives import ObjectivesError, load_task_plugin
        from objectives._plugins import absolute_spec

        try:
            spec = absolute_spec(str(data["plugin"]))
            name = load_task_plugin(spec)
        except ObjectivesError as exc:
            raise ValueError(str(exc)) from None
        if data.get("name") not in (None, name):
            raise ValueError(
                f"name {data['name']!r} differs from the name {name!r} the plugin's task declares"
            )
        return {**data, "plugin": spec, "name": name}

    @field_validator("name")
    @classmethod
    def _known_task(cls, value: str) -> str:
        from objectives import task_names

        if value not in task_names():  # the registry: built-in and registered tasks alike
            raise ValueError(f"unknown task {value!r}; allowed: {', '.join(task_names())}")
        return value

    @field_validator("data")
    @classmethod
    def _existing_file(cls, value: str) -> str:
        if value != "synthetic" and not Path(value).is_file():
            raise ValueError(
                f"no data file {value!r} (relative to {Path.cwd()}); use 'synthetic' or a CSV/NPY path"
            )
        return value

    @model_validator(mode="after")
    def _known_loss(self) -> TaskConfig:
        from objectives import ObjectivesError, get_task

        try:
            get_task(self.name, loss=self.loss)
        except ObjectivesError as exc:
            raise ValueError(str(exc)) from None
        return self


class StrategyConfig(_Frozen):
    name: str = "hwnas"
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        from search.strategies import STRATEGY_NAMES

        if value not in STRATEGY_NAMES:
            raise ValueError(f"unknown strategy {value!r}; allowed: {', '.join(STRATEGY_NAMES)}")
        return value


class ExecutorConfig(_Frozen):
    """Where trials run: in local processes, or as Ray tasks on a local Ray or an existing cluster."""

    kind: Literal["local", "ray"] = "local"
    workers: int = Field(1, ge=1, le=64, description="trials run at once")
    address: str | None = Field(
        None,
        description="ray only: None starts a local Ray; 'auto', 'HOST:PORT' or 'ray://HOST:PORT' joins one",
    )
    num_cpus: int | None = Field(
        None, ge=1, description="ray only: CPUs of the local Ray hwnas starts (default: workers)"
    )

    @model_validator(mode="after")
    def _ray_only_keys(self) -> ExecutorConfig:
        if self.kind == "local":
            given = [k for k in ("address", "num_cpus") if getattr(self, k) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} only apply to kind 'ray' (kind is 'local')")
        if self.address is not None and self.num_cpus is not None:
            raise ValueError(
                "num_cpus sizes the local Ray hwnas starts; with an address the cluster's CPUs are used"
            )
        return self


# Determined-style adaptive modes: how hard ASHA cuts. (reduction factor, brackets, grace as a fraction of
# the sweep's epochs); explicit grace_period/reduction_factor/brackets override the preset.
ASHA_PRESETS: dict[str, tuple[int, int, float]] = {
    "aggressive": (4, 1, 1 / 16),
    "standard": (3, 2, 1 / 9),
    "conservative": (2, 3, 1 / 4),
}


class SchedulerConfig(_Frozen):
    """Early stopping of trials at rungs (ASHA, decided inside each trial: works on every executor)."""

    kind: Literal["none", "asha"] = "none"
    mode: Literal["aggressive", "standard", "conservative"] = "standard"
    grace_period: int | None = Field(None, ge=1, description="epochs before the first rung (preset if None)")
    reduction_factor: int | None = Field(
        None, ge=2, description="1/reduction_factor of trials go on per rung"
    )
    brackets: int | None = Field(None, ge=1, le=5, description="ASHA brackets (preset if None)")
    metric: Literal["val_loss", "emd"] = Field(
        "val_loss", description="rung metric: validation loss, or EMD on a fixed validation subsample"
    )
    emd_rows: int = Field(500, ge=10, description="validation rows of the EMD rung metric's fixed subsample")
    promotion: Literal["pareto", "metric"] = Field(
        "pareto",
        description=(
            "pareto: rung metric and the sweep's hardware-cost objectives ranked together (cheap models "
            "survive); metric: the rung metric alone (as Ray's ASHAScheduler)"
        ),
    )


class HardwareConfig(_Frozen):
    io_type: Literal["io_parallel", "io_stream"] = "io_parallel"
    reuse_factor: int = Field(1, ge=1)
    strategy: Literal["Latency", "Resource"] = "Latency"
    default_precision: str = "ap_fixed<16,6>"
    clock_period_ns: float = Field(5.0, gt=0)


class Stage(_Frozen):
    """One stage of a staged training recipe: what it does (``SweepConfig.stages``; the kinds are
    `spaces.STAGES`, not imported here to keep torch out of config parsing) and its epochs."""

    kind: Literal["train", "prune", "retrain", "quantize"]
    epochs: int = Field(ge=1)


class SweepTrialTeacher(_Frozen):
    """A distillation teacher: a trial of another sweep in the same store."""

    sweep: str
    trial: int = Field(ge=0, description="the trial's number (from 0)")


class CheckpointTeacher(_Frozen):
    """A distillation teacher: a saved state dict and the model config it belongs to."""

    checkpoint: str = Field(description="a torch state dict file (torch.save(model.state_dict()))")
    config: str | dict[str, Any] = Field(description="the model config: a mapping or a YAML/JSON file")


_TEACHER_FORMS = (
    "a trial number of this sweep, a preset name, {sweep: NAME, trial: NUMBER} or "
    "{checkpoint: PATH, config: PATH or mapping}"
)


def _teacher_form(value: Any) -> str | None:
    """Which of the teacher forms ``value`` is (a callable discriminator: precise errors per form)."""
    # The tags appear in error paths, e.g. `distill.teacher.{sweep, trial}.trial: Field required`.
    if isinstance(value, CheckpointTeacher) or (isinstance(value, dict) and "checkpoint" in value):
        return "{checkpoint, config}"
    if isinstance(value, SweepTrialTeacher) or (isinstance(value, dict) and "sweep" in value):
        return "{sweep, trial}"
    if isinstance(value, bool):
        return None
    return "trial number" if isinstance(value, int) else "preset" if isinstance(value, str) else None


Teacher = Annotated[
    Annotated[int, Tag("trial number"), Field(ge=0)]
    | Annotated[str, Tag("preset")]
    | Annotated[SweepTrialTeacher, Tag("{sweep, trial}")]
    | Annotated[CheckpointTeacher, Tag("{checkpoint, config}")],
    Discriminator(
        _teacher_form,
        custom_error_type="teacher_form",
        custom_error_message=f"a teacher is {_TEACHER_FORMS}",
    ),
]


class DistillConfig(_Frozen):
    """Knowledge distillation of every trial from one teacher (README, "Knowledge distillation")."""

    teacher: Teacher
    alpha: float = Field(
        0.5, description="share of the distillation loss: (1 - alpha) * task loss + alpha * distillation"
    )
    temperature: float = Field(2.0, description="softening of a classifier's logits (autoencoders: unused)")
    epochs: int | None = Field(
        None, ge=1, description="epochs a preset teacher trains (default: the sweep's epochs)"
    )

    @field_validator("alpha")
    @classmethod
    def _alpha_in_range(cls, value: float) -> float:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"alpha {value} is outside [0, 1]; allowed: a share from 0 (no teacher) to 1")
        return value

    @field_validator("temperature")
    @classmethod
    def _temperature_positive(cls, value: float) -> float:
        if not (value > 0 and value != float("inf")):
            raise ValueError(f"temperature {value} must be a finite value > 0")
        return value

    @model_validator(mode="after")
    def _epochs_of_a_preset(self) -> DistillConfig:
        if self.epochs is not None and not isinstance(self.teacher, str):
            raise ValueError("epochs only applies to a preset teacher (the others are trained already)")
        return self


class SweepConfig(_Frozen):
    """A whole sweep. Unknown keys are errors; defaults are the documented ones."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    task: TaskConfig
    space: str | dict[str, Any] = Field(description="a built-in space name or an inline space mapping")
    objectives: list[Objective] = Field(min_length=1, max_length=4)
    budgets: list[str] = Field(default_factory=list, description="hardware budgets, e.g. 'bops <= 50000'")
    reference_point: dict[str, float] | None = None
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    trials: int = Field(20, ge=1, description="trials to run (finished ones count)")
    time_limit_s: float | None = Field(
        None,
        gt=0,
        description=(
            "stop launching trials after this wall time (the running ones finish, and with a local pool "
            "the one waiting for a worker too)"
        ),
    )
    epochs: int = Field(5, ge=1, description="training epochs of a full-fidelity trial")
    patience: int | None = Field(None, ge=1, description="early-stopping patience in epochs")
    stages: list[Stage] = Field(
        default_factory=list,
        description=(
            "a staged recipe every trial trains with, e.g. [{train: 10}, {prune: 5}, {retrain: 10}, "
            "{quantize: 5}, {retrain: 10}]: train = as the model is (float, dense), prune = magnitude "
            "sparsity ramps to the config's target and node gates close (the network is then rebuilt "
            "smaller), quantize = quantizers on from here, retrain = fine-tune; each stage restarts Adam. "
            "epochs becomes their total. Empty: the fraction-based schedule"
        ),
    )
    distill: DistillConfig | None = Field(
        None,
        description=(
            "knowledge distillation of every trial: {teacher, alpha, temperature, epochs}; the teacher is "
            "a trial of this sweep (later trials learn from it), a preset (trained once in the store), "
            "{sweep, trial} or {checkpoint, config}"
        ),
    )
    warm_start: list[str | dict[str, Any]] = Field(
        default_factory=list, description="preset names or configs evaluated before the strategy's proposals"
    )
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    hardware: HardwareConfig = Field(default_factory=HardwareConfig)
    store: str = "sqlite:///hwnas.db"
    seed: int = 0
    max_retries: int = Field(1, ge=0, description="re-runs of a trial whose worker died")
    confirm_seeds: int = Field(
        0,
        ge=0,
        description="re-evaluate every trial entering the front with this many extra seeds, as it runs",
    )
    heartbeat_s: float = Field(
        10.0, gt=0, description="heartbeat interval; 3 missed beats mark a worker dead"
    )

    @model_validator(mode="before")
    @classmethod
    def _stage_epochs(cls, data: Any) -> Any:
        # `[{train: 10}]` as well as `[{kind: train, epochs: 10}]`; epochs is the stages' total.
        if not isinstance(data, dict) or not isinstance(data.get("stages"), list):
            return data
        stages = []
        for item in data["stages"]:
            if isinstance(item, dict) and len(item) == 1 and "kind" not in item:
                ((kind, epochs),) = item.items()
                item = {"kind": kind, "epochs": epochs}
            stages.append(item)
        try:
            total = sum(int(stage["epochs"]) for stage in stages)
        except (TypeError, KeyError, ValueError):
            return {**data, "stages": stages}  # the field validation names the bad stage
        if "epochs" in data and data["epochs"] != total and stages:
            raise ValueError(
                f"epochs {data['epochs']!r} differs from the stages' total {total}; drop epochs or make "
                "them agree"
            )
        return {**data, "stages": stages, **({"epochs": total} if stages else {})}

    @field_validator("objectives", mode="before")
    @classmethod
    def _objective_shorthand(cls, value: Any) -> Any:
        # Accept `[{emd_mean: minimize}]` as well as `[{name: emd_mean, direction: minimize}]`.
        if not isinstance(value, list):
            return value
        out = []
        for item in value:
            if isinstance(item, dict) and len(item) == 1 and "name" not in item:
                ((name, direction),) = item.items()
                out.append({"name": name, "direction": direction})
            else:
                out.append(item)
        return out

    @model_validator(mode="after")
    def _check_names(self) -> SweepConfig:
        from hw_models import COST_QUANTITIES, CPU_QUANTITIES, Budget, onnxruntime_problem
        from objectives import get_task

        metrics = get_task(self.task.name).metric_directions
        allowed = [*metrics, *COST_QUANTITIES, *MODEL_METRICS, *CPU_QUANTITIES]
        names = [o.name for o in self.objectives]
        for index, name in enumerate(names):
            if name not in allowed:
                raise ValueError(
                    f"objectives[{index}]: unknown objective {name!r}{_did_you_mean(name, allowed)}; "
                    f"allowed: {', '.join(allowed)}"
                )
            if name in CPU_QUANTITIES and (problem := onnxruntime_problem()) is not None:
                raise ValueError(f"objectives[{index}]: {name} is measured with ONNX Runtime, but {problem}")
        if len(set(names)) != len(names):
            raise ValueError(f"objectives repeat a name: {names}")
        for index, text in enumerate(self.budgets):
            try:
                Budget.parse(text)
            except ValueError as exc:
                raise ValueError(f"budgets[{index}]: {exc}") from None
        if self.scheduler.grace_period is not None and self.scheduler.grace_period >= self.epochs:
            raise ValueError(
                f"scheduler.grace_period {self.scheduler.grace_period} must be below epochs {self.epochs}"
            )
        if self.reference_point is not None and set(self.reference_point) != set(names):
            raise ValueError(
                f"reference_point must give exactly the objectives {names}, got {sorted(self.reference_point)}"
            )
        return self

    @property
    def directions(self) -> list[Direction]:
        return [o.direction for o in self.objectives]

    def fingerprint(self) -> str:
        """Hash of everything that defines the sweep's results (not the store URL or executor size)."""
        excluded = [
            "store",
            "executor",
            "trials",
            "time_limit_s",
            "heartbeat_s",
            "max_retries",
            "confirm_seeds",
            # Sweeps without a scheduler keep the fingerprint they had before schedulers existed.
            *(["scheduler"] if self.scheduler.kind == "none" else []),
            *([] if self.stages else ["stages"]),  # likewise sweeps without stages
            *([] if self.distill else ["distill"]),  # and without distillation
        ]
        exclude: dict[str, Any] = dict.fromkeys(excluded, True)
        if self.task.plugin is None:  # hashes as before the plugin key existed: older sweeps still resume
            exclude["task"] = {"plugin"}
        defining = self.model_dump(mode="json", exclude=exclude)
        return hashlib.sha256(json.dumps(defining, sort_keys=True).encode()).hexdigest()

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# -- messages: "did you mean", key paths (reliability, issue 14) ----------------------------------------
_KEY_PATH = re.compile(r"^(\w+\[\d+\]): ")


def _did_you_mean(word: str, allowed: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(allowed), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _keys_at(loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed in the mapping that holds ``loc``'s last key (nested config models only)."""
    model: Any = SweepConfig
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = field.annotation if field is not None else None
        # an optional section (`distill: DistillConfig | None`) holds the model's keys too
        models = [
            a for a in (annotation, *get_args(annotation)) if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if not models:
            return []
        model = models[0]
    return list(model.model_fields)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping (YAML would keep the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"line {line}: duplicate key {key!r} (first given on line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


# -- end of messages ---------------------------------------------------------------------------------


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid sweep config ({error.error_count()} problem(s)):"]
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if not item["loc"] and (match := _KEY_PATH.match(message)):
            where, message = match.group(1), message[match.end() :]
        if item["type"] == "extra_forbidden":
            key = str(item["loc"][-1]) if item["loc"] else ""
            allowed = _keys_at(tuple(item["loc"]))
            message = "unknown key" + _did_you_mean(key, allowed)
            if len(item["loc"]) > 1 and allowed:  # a section's keys are few enough to list
                message += f"; allowed: {', '.join(allowed)}"
        elif item["type"] == "literal_error":
            message = f"got {item['input']!r}; {message.lower()}"
        lines.append(f"  - {where}: {message}")
    return "\n".join(lines)


def parse_config(data: Any, *, source: str = "config") -> SweepConfig:
    """Validate a mapping as a SweepConfig. Raises ConfigError listing every problem with its key path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a sweep config is a YAML mapping, got {type(data).__name__}")
    try:
        return SweepConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None


def load_config(path: str | Path, **overrides: Any) -> SweepConfig:
    """Read and validate a sweep YAML file; ``overrides`` replace top-level keys (e.g. store=...)."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such sweep config file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(data, dict):
        data.update({k: v for k, v in overrides.items() if v is not None})
    return parse_config(data, source=str(path))
