"""Prefect 1's ``prefect.engine.cache_validators``: the validators of :mod:`headwater.engine.cache`."""

from headwater.engine.cache import (
    all_inputs,
    all_parameters,
    duration_only,
    never_use,
    partial_inputs_only,
    partial_parameters_only,
)

__all__ = ["never_use", "duration_only", "all_inputs", "all_parameters", "partial_inputs_only", "partial_parameters_only"]
