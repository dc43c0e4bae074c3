"""Serialization: one cattrs converter with ``"type"``-tagged polymorphic classes, and flow metadata."""

from headwater.serialization.converter import (
    SerializationError,
    canonical_json,
    converter,
    dumps,
    from_dict,
    register_polymorphic_base,
    to_dict,
)
from headwater.serialization.flow_metadata import FlowMetadata, flow_hash, flow_metadata, serialize_flow

__all__ = [
    "SerializationError",
    "canonical_json",
    "converter",
    "dumps",
    "from_dict",
    "register_polymorphic_base",
    "to_dict",
    "serialize_flow",
    "flow_metadata",
    "FlowMetadata",
    "flow_hash",
]
