"""Feature rules: keys, and the two wire forms of group-by filters."""

from __future__ import annotations

import pytest

from allotment.domain.features import group_by_filters_from_wire, is_valid_key
from allotment.domain.group_filters import StringFilter
from allotment.errors import InvalidInput


def test_legacy_map_means_equality_and_both_forms_are_refused() -> None:
    assert group_by_filters_from_wire({"model": "gpt-4"}, None) == {
        "model": StringFilter("$eq", "gpt-4")
    }
    with pytest.raises(InvalidInput) as raised:
        group_by_filters_from_wire({"model": "a"}, {"model": {"$eq": "a"}})
    assert raised.value.field == "advancedMeterGroupByFilters"
    with pytest.raises(InvalidInput) as empty:
        group_by_filters_from_wire({"model": ""}, None)
    assert empty.value.field == "meterGroupByFilters.model"


def test_advanced_filters_keep_every_operator() -> None:
    filters = group_by_filters_from_wire(
        None, {"model": {"$in": ["gpt-4o", "gpt-4o-mini"]}, "type": {"$like": "in%"}}
    )
    assert filters == {
        "model": StringFilter("$in", ("gpt-4o", "gpt-4o-mini")),
        "type": StringFilter("$like", "in%"),
    }


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("ai_tokens", True),
        ("a1_b2_c3", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("AI_tokens", False),
        ("ai-tokens", False),
        ("ai__tokens", False),
        ("_ai", False),
        ("ai_", False),
        ("01arz3ndektsv4rrffq69g5fav", False),  # shaped like a ULID
        ("81arz3ndektsv4rrffq69g5fav", True),  # a ULID cannot start with 8
    ],
)
def test_feature_keys(key: str, valid: bool) -> None:
    assert is_valid_key(key) is valid
