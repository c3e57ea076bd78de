"""The JSON parser of every request body but ingest's (which parses its own, in one pass).

What it refuses, so that nothing is silently changed or blows up further in:
- duplicate keys in an object (a JSON parser would keep the last one without a word);
- `NaN`, `Infinity` and numbers out of a double's range (`1e400`) or below it (`1e-400`), which
  would otherwise be stored as null or 0;
- nesting deeper than `max_json_depth` (400), and arrays, strings or `metadata` objects larger
  than their limits (413).

Numbers: a number a double holds exactly as written (`0.1`, `12.5`, `1e3`) becomes a float; one
it does not (`0.1234567890123456789`, `1e-400`) becomes a Decimal, which amount fields take
exactly and free-form JSON (subject metadata) refuses. Integers stay exact at any size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from allotment.errors import FieldError, InvalidInput, TooLarge
from allotment.settings import Settings


@dataclass(frozen=True, slots=True)
class JsonLimits:
    depth: int
    array_items: int
    string_bytes: int
    metadata_bytes: int

    @classmethod
    def of(cls, settings: Settings) -> JsonLimits:
        return cls(
            depth=settings.max_json_depth,
            array_items=settings.max_array_items,
            string_bytes=settings.max_string_bytes,
            metadata_bytes=settings.max_metadata_bytes,
        )


class _Refused(ValueError):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise _Refused(f"duplicate key {key!r} in an object", "duplicate_key")
            seen.add(key)
    return result


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number", "number_not_finite")


def _number(text: str) -> float | Decimal:
    value = float(text)
    if value - value != 0.0:
        raise _Refused(f"{text} is out of range", "number_not_finite")
    if Decimal(repr(value)) == Decimal(text):
        return value
    return Decimal(text)


def loads(body: bytes, limits: JsonLimits) -> Any:
    """The parsed body; InvalidInput (400) or TooLarge (413) naming the field otherwise."""
    try:
        document = json.loads(
            body, object_pairs_hook=_object, parse_constant=_constant, parse_float=_number
        )
    except _Refused as refused:
        errors = [_error("body", refused.message, refused.code)]
        raise InvalidInput(refused.message, errors=errors) from None
    except RecursionError:
        raise _too_deep("body", limits) from None
    except json.JSONDecodeError as error:
        message = f"invalid JSON: {error.msg} at position {error.pos}"
        raise InvalidInput(message, errors=[_error("body", message, "json_invalid")]) from None
    except ValueError as error:  # not UTF-8, or an integer of thousands of digits
        message = f"invalid JSON: {type(error).__name__}"
        if "digits" in str(error):
            message = "invalid JSON: an integer with more than 4300 digits"
        raise InvalidInput(message, errors=[_error("body", message, "json_invalid")]) from None
    check(document, limits)
    return document


def _error(field: str, message: str, code: str) -> FieldError:
    return FieldError(field=field, message=message, code=code)


def _too_deep(field: str, limits: JsonLimits) -> InvalidInput:
    message = f"nested more than {limits.depth} levels deep"
    return InvalidInput(f"{field}: {message}", errors=[_error(field, message, "too_deep")])


def _too_large(field: str, message: str) -> TooLarge:
    return TooLarge(f"{field}: {message}", errors=[_error(field, message, "too_large")])


def _path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]" if parent else f"[{key}]"
    return f"{parent}.{key}" if parent else key


def check(document: Any, limits: JsonLimits) -> None:
    """Depth, sizes and metadata, walked without recursion (the depth is what is checked)."""
    stack: list[tuple[Any, str, int, bool]] = [(document, "", 1, False)]
    while stack:
        node, path, depth, in_metadata = stack.pop()
        kind = type(node)
        if kind is dict or kind is list:
            if depth > limits.depth:
                raise _too_deep(path or "body", limits)
            if kind is list:
                if len(node) > limits.array_items:
                    raise _too_large(path or "body", f"more than {limits.array_items} items")
                children: Any = enumerate(node)
            else:
                children = node.items()
            for key, value in children:
                child_path = _path(path, key)
                if kind is dict and len(key) > limits.string_bytes:
                    raise _too_large(path or "body", "a key is too long")
                child_in_metadata = in_metadata
                if key == "metadata" and type(value) is dict and not in_metadata:
                    if _encoded_size(value) > limits.metadata_bytes:
                        raise _too_large(
                            child_path, f"larger than {limits.metadata_bytes} bytes encoded"
                        )
                    child_in_metadata = True
                stack.append((value, child_path, depth + 1, child_in_metadata))
        elif kind is str:
            if len(node) * 4 > limits.string_bytes and len(node.encode()) > limits.string_bytes:
                raise _too_large(path or "body", f"longer than {limits.string_bytes} bytes")
        elif kind is Decimal and in_metadata:
            message = (
                f"{node} cannot be stored exactly: metadata numbers must fit a double "
                "(about 17 significant digits, 1e-308 to 1e308)"
            )
            raise InvalidInput(
                f"{path}: {message}", errors=[_error(path, message, "number_not_exact")]
            )


def _encoded_size(value: Any) -> int:
    return len(json.dumps(value, default=str, ensure_ascii=False).encode())
