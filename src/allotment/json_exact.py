"""JSON that keeps numbers exactly as sent, in both directions.

Usage numbers are money-like: `0.1` must stay `0.1`, `12345678901234567890.123` must not become
a binary float, and an integer wider than 64 bits must survive. So documents are read with
jiter in decimal mode (a number with a fraction or an exponent becomes a `Decimal` holding its
exact text; integers stay integers of any size; `NaN`, `Infinity` and duplicate keys are
refused) and written with orjson, which writes each `Decimal` as the number text it holds.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import jiter
import orjson


def loads(data: bytes | str) -> Any:
    """Parse JSON exactly; ValueError (naming line and column) for anything that is not
    strict JSON or repeats a key inside an object."""
    raw = data.encode() if isinstance(data, str) else data
    return jiter.from_json(
        raw, float_mode="decimal", catch_duplicate_keys=True, allow_inf_nan=False
    )


def loads_stored(data: str | bytes) -> Any:
    """Read back a JSON document this server wrote (no duplicate-key or NaN checks needed)."""
    raw = data.encode() if isinstance(data, str) else data
    return jiter.from_json(raw, float_mode="decimal")


def _fragment(value: object) -> object:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(value: Any) -> bytes:
    """Compact JSON bytes with every number exactly as it is held."""
    try:
        return orjson.dumps(value, default=_fragment)
    except TypeError:
        # orjson stops at 64-bit integers; JSON itself has no such limit.
        return _dumps_slowly(value).encode()


def _dumps_slowly(value: Any) -> str:
    if isinstance(value, dict):
        items = (
            f"{json.dumps(str(k), ensure_ascii=False)}:{_dumps_slowly(v)}" for k, v in value.items()
        )
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_dumps_slowly(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False)
