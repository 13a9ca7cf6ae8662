"""Exceptions raised by hw_models."""

from __future__ import annotations


class HWError(ValueError):
    """Bad input to hw_models: the message names the bad value and what is allowed."""


class UnsupportedLayerError(HWError):
    """A layer or operation that hls4ml cannot convert; the message names it and lists the supported types."""
