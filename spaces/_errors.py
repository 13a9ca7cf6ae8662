"""The package's error type and the value ``Space.validate`` returns for a well-formed but unbuildable config."""

from __future__ import annotations

from dataclasses import dataclass


class SpaceError(ValueError):
    """A space definition or a config is malformed; the message names the key/parameter, the bad value and
    what is allowed."""


@dataclass(frozen=True)
class Infeasible:
    """A config whose values are all legal but which breaks a constraint or shape rule (never trained)."""

    reason: str
