"""Spec language: YAML loading with positions, Pydantic schema, validation."""

from .load import SpecSource, load_spec, parse_spec
from .schema import Spec, json_schema

__all__ = ["Spec", "SpecSource", "json_schema", "load_spec", "parse_spec"]
