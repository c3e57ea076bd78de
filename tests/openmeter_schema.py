"""Checking documents against schemas of OpenMeter's OpenAPI document (the reference copy):
types, required properties, enums, patterns, `$ref`, `allOf`, and `oneOf` with a discriminator.
Enough of OpenAPI 3 for the shapes Allotment promises to match, without a JSON Schema library."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import pytest
import yaml

from tests.openmeter_reference import openmeter_document


@cache
def _document() -> dict[str, Any]:
    reference = openmeter_document()
    if reference is None:
        pytest.skip("OpenMeter's OpenAPI document is not here (tests/openmeter_reference.py)")
    loaded: dict[str, Any] = yaml.safe_load(reference.read_text())
    return loaded


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = _document()["components"]["schemas"][name]
    return schema


def problems(document: Any, schema_name: str) -> list[str]:
    """Where `document` breaks the named schema (empty when it conforms)."""
    found: list[str] = []
    _check(document, {"$ref": f"#/components/schemas/{schema_name}"}, "$", found)
    return found


def _check(value: Any, schema: dict[str, Any], at: str, found: list[str]) -> None:
    schema = _resolve(schema)
    if value is None:
        if not schema.get("nullable"):
            found.append(f"{at}: null")
        return
    for part in schema.get("allOf", ()):
        _check(value, part, at, found)
    if "oneOf" in schema:
        discriminator = schema.get("discriminator")
        if discriminator and isinstance(value, dict):
            tag = value.get(discriminator["propertyName"])
            target = discriminator["mapping"].get(tag)
            if target is None:
                found.append(f"{at}: unknown {discriminator['propertyName']} {tag!r}")
            else:
                _check(value, {"$ref": target}, at, found)
        elif not any(not problems_of(value, option) for option in schema["oneOf"]):
            found.append(f"{at}: matches no option")
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if not isinstance(value, dict):
            found.append(f"{at}: not an object")
            return
        for name in schema.get("required", ()):
            if name not in value:
                found.append(f"{at}.{name}: missing")
        for name, item in value.items():
            if name in schema.get("properties", {}):
                _check(item, schema["properties"][name], f"{at}.{name}", found)
            elif isinstance(schema.get("additionalProperties"), dict):
                _check(item, schema["additionalProperties"], f"{at}.{name}", found)
    elif kind == "array":
        if not isinstance(value, list):
            found.append(f"{at}: not an array")
            return
        for index, item in enumerate(value):
            _check(item, schema.get("items", {}), f"{at}[{index}]", found)
    elif kind == "string":
        if not isinstance(value, str):
            found.append(f"{at}: not a string")
        elif "pattern" in schema and not re.search(schema["pattern"], value):
            found.append(f"{at}: {value!r} does not match {schema['pattern']}")
    elif kind in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            found.append(f"{at}: not a number")
    elif kind == "boolean" and not isinstance(value, bool):
        found.append(f"{at}: not a boolean")
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{at}: {value!r} not in {schema['enum']}")


def problems_of(value: Any, schema: dict[str, Any]) -> list[str]:
    found: list[str] = []
    _check(value, schema, "$", found)
    return found
