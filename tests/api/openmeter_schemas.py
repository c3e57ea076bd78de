"""Responses checked against OpenMeter's own OpenAPI schemas (shared/reference, beside the
repository or a parent of it): the wire compatibility oracle for plans and subscriptions."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
import yaml
from openapi_schema_validator import OAS30Validator

from tests.openmeter_reference import openmeter_document


@cache
def _components() -> dict[str, Any] | None:
    document = openmeter_document()
    if document is None:
        return None
    components: dict[str, Any] = yaml.safe_load(document.read_text())["components"]
    return _nullable_compositions(components)


def _nullable_compositions(node: Any) -> Any:
    """`nullable: true` beside `allOf` means "this, or null" (OpenAPI 3.0.3's reading, and
    OpenMeter's: it sends `price: null`); validators apply it to the outer schema only."""
    if isinstance(node, list):
        return [_nullable_compositions(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable_compositions(value) for key, value in node.items()}
    if node.get("nullable") is True and "allOf" in node:
        rest = {k: v for k, v in node.items() if k not in ("nullable", "allOf", "type")}
        return {**rest, "anyOf": [{"allOf": node["allOf"]}, {"enum": [None]}]}
    return node


def assert_openmeter_schema(name: str, document: Any) -> None:
    """Fails naming every difference between `document` and OpenMeter's schema `name`."""
    components = _components()
    if components is None:
        pytest.skip("OpenMeter's OpenAPI document is not here (tests/openmeter_reference.py)")
    schema = {"$ref": f"#/components/schemas/{name}", "components": components}
    validator = OAS30Validator(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:20]
    )
