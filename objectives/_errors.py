"""The exceptions of the objectives package."""

from __future__ import annotations


class ObjectivesError(ValueError):
    """An argument outside what a function accepts; the message names the value and what is allowed."""


class DataError(ObjectivesError):
    """A data file or array that cannot be used; the message names the file, 1-based line and problem."""


class DivergedError(RuntimeError):
    """Training produced a NaN or infinite loss; the message names the epoch and the value."""
