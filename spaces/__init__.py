"""What can be searched: typed conditional spaces with Optuna/Ax adapters, the built-in ECON-T and waveform
spaces and presets, and the autoencoder families built from a config."""

from ._builtin import PRESET_NAMES, SPACE_NAMES, get_preset, get_space
from ._constraints import Constraint
from ._errors import Infeasible, SpaceError
from ._models import Autoencoder, ConvAutoencoder, DenseAutoencoder, build_model
from ._params import BoolParam, ChoiceParam, FloatParam, IntParam, Param
from ._space import Space

__all__ = [
    "PRESET_NAMES",
    "SPACE_NAMES",
    "Autoencoder",
    "BoolParam",
    "ChoiceParam",
    "Constraint",
    "ConvAutoencoder",
    "DenseAutoencoder",
    "FloatParam",
    "Infeasible",
    "IntParam",
    "Param",
    "Space",
    "SpaceError",
    "build_model",
    "get_preset",
    "get_space",
]
