"""Group-by filters: what each operator matches, and what the parser refuses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from allotment.domain.features import group_by_filters_from_wire, is_valid_key
from allotment.domain.group_by_filters import StringFilter, parse_string_filter
from allotment.errors import InvalidInput


def _matches(document: object, value: str | None) -> bool:
    return parse_string_filter(document, field="f").matches(value)


@pytest.mark.parametrize(
    ("document", "value", "expected"),
    [
        ({"$eq": "gpt-4"}, "gpt-4", True),
        ({"$eq": "gpt-4"}, "gpt-4o", False),
        ({"$ne": "gpt-4"}, "gpt-4o", True),
        ({"$in": ["a", "b"]}, "b", True),
        ({"$nin": ["a", "b"]}, "b", False),
        ({"$like": "gpt-%"}, "gpt-4o", True),
        ({"$like": "gpt-_"}, "gpt-4o", False),
        ({"$like": "a.c"}, "abc", False),  # only % and _ are wildcards
        ({"$nlike": "gpt-%"}, "claude", True),
        ({"$ilike": "GPT%"}, "gpt-4", True),
        ({"$nilike": "GPT%"}, "gpt-4", False),
        ({"$gt": "b"}, "c", True),
        ({"$gte": "b"}, "b", True),
        ({"$lt": "b"}, "a", True),
        ({"$lte": "b"}, "c", False),
        ({"$and": [{"$like": "gpt%"}, {"$ne": "gpt-4"}]}, "gpt-4", False),
        ({"$or": [{"$eq": "a"}, {"$and": [{"$gt": "m"}, {"$lt": "p"}]}]}, "n", True),
        # A value the event does not carry compares as "".
        ({"$eq": "x"}, None, False),
        ({"$ne": "x"}, None, True),
    ],
)
def test_operator_meanings(document: object, value: str | None, expected: bool) -> None:
    assert _matches(document, value) is expected


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ("gpt-4", "f"),
        ({}, "f"),
        ({"$eq": "a", "$ne": "b"}, "f"),
        ({"$regex": "a"}, "f"),
        ({"$eq": ""}, "f.$eq"),
        ({"$eq": 4}, "f.$eq"),
        ({"$in": []}, "f.$in"),
        ({"$in": "a"}, "f.$in"),
        ({"$in": ["a", ""]}, "f.$in.1"),
        ({"$or": [{"$eq": "a"}, {"$bad": "b"}]}, "f.$or.1"),
        ({"$eq": "nul\x00"}, "f.$eq"),
    ],
)
def test_bad_filters_name_the_field(document: object, field: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_string_filter(document, field="f")
    assert raised.value.field == field


def test_nesting_is_bounded() -> None:
    document: object = {"$eq": "x"}
    for _ in range(8):
        document = {"$and": [document]}
    with pytest.raises(InvalidInput, match="nest at most"):
        parse_string_filter(document, field="f")


texts = st.text(alphabet="ab%_-xyz", min_size=1, max_size=6)
plain_texts = st.text(alphabet="abc-XYZ", min_size=1, max_size=6)


@given(pattern=plain_texts, value=st.text(alphabet="abc-XYZ", max_size=6))
def test_like_without_wildcards_is_equality(pattern: str, value: str) -> None:
    assert _matches({"$like": pattern}, value) is (value == pattern)
    assert _matches({"$ilike": pattern}, value) is (value.lower() == pattern.lower())


@given(pattern=texts, value=st.text(alphabet="ab%_-xyz", max_size=6))
def test_negations_are_complements(pattern: str, value: str) -> None:
    for positive, negative in (("$eq", "$ne"), ("$like", "$nlike"), ("$ilike", "$nilike")):
        assert _matches({positive: pattern}, value) is not _matches({negative: pattern}, value)


@given(
    document=st.recursive(
        st.builds(lambda op, v: {op: v}, st.sampled_from(["$eq", "$like", "$gt"]), texts)
        | st.builds(lambda v: {"$in": v}, st.lists(texts, min_size=1, max_size=3)),
        lambda children: st.builds(
            lambda op, items: {op: items},
            st.sampled_from(["$and", "$or"]),
            st.lists(children, min_size=1, max_size=3),
        ),
        max_leaves=6,
    )
)
def test_documents_round_trip(document: dict[str, object]) -> None:
    parsed = parse_string_filter(document, field="f")
    assert parsed.to_document() == document
    assert parse_string_filter(parsed.to_document(), field="f") == parsed


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
