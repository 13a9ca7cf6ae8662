"""What can be searched: typed conditional spaces with Optuna/Ax adapters, the built-in ECON-T and waveform
spaces and presets, and the registry of model families (autoencoders built from a config and an input
shape; a task names its family, the family knows no task)."""

from ._autoencoders import ConvAutoencoder, DenseAutoencoder
from ._builtin import PRESET_NAMES, SPACE_NAMES, get_preset, get_space
from ._constraints import Constraint
from ._errors import Infeasible, SpaceError
from ._families import UNCOMPRESSED, FamilyBuilder, build_model, family_names, register_family
from ._models import STAGES, Autoencoder, ModelInput
from ._params import BoolParam, ChoiceParam, FloatParam, IntParam, Param
from ._ranges import MODEL_KEY_RANGES, ValueRange, keep_problems, key_range, range_problems
from ._space import Space

__all__ = [
    "MODEL_KEY_RANGES",
    "PRESET_NAMES",
    "SPACE_NAMES",
    "STAGES",
    "UNCOMPRESSED",
    "Autoencoder",
    "BoolParam",
    "ChoiceParam",
    "Constraint",
    "ConvAutoencoder",
    "DenseAutoencoder",
    "FamilyBuilder",
    "FloatParam",
    "Infeasible",
    "IntParam",
    "ModelInput",
    "Param",
    "Space",
    "SpaceError",
    "ValueRange",
    "build_model",
    "family_names",
    "get_preset",
    "get_space",
    "keep_problems",
    "key_range",
    "range_problems",
    "register_family",
]
