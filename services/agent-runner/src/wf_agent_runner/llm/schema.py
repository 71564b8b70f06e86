"""JSON schemas as sent to model servers.

Grammar-constrained decoders (llama.cpp's GBNF, which `llama-server` and `llama-cpp-python` build
from `response_format`) expand `maxLength: 20000` into a rule repeated 20000 times and crash or stall.
So bounds above `LARGE_BOUND` are dropped from the schema we send; the reply is validated against the
full pydantic model afterwards, so nothing is lost but a hint.
"""

from __future__ import annotations

from typing import Any

LARGE_BOUND = 64
_BOUNDS = ("maxLength", "minLength", "maxItems", "minItems", "maxProperties", "minProperties")


def wire_schema(schema: Any) -> Any:
    """A copy of `schema` without length/count bounds larger than LARGE_BOUND (recursively)."""
    if isinstance(schema, list):
        return [wire_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _BOUNDS and isinstance(value, int) and value > LARGE_BOUND:
            continue
        out[key] = wire_schema(value)
    return out
