"""Group-by value filters (FilterString): parsing, what it refuses, and the reference meaning."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from allotment.domain.group_filters import StringFilter, parse_filter
from allotment.errors import InvalidInput


def matches(raw: object, value: str | None) -> bool:
    return parse_filter(raw, "f").matches(value)


@pytest.mark.parametrize(
    ("raw", "value", "expected"),
    [
        ({"$eq": "gpt-4"}, "gpt-4", True),
        ({"$eq": "gpt-4"}, "gpt-4o", False),
        ({"$eq": "gpt-4"}, "GPT-4", False),
        ({"$ne": "gpt-4"}, "mini", True),
        ({"$ne": "gpt-4"}, None, True),
        ({"$eq": "gpt-4"}, None, False),
        ({"$in": ["a", "b"]}, "b", True),
        ({"$nin": ["a", "b"]}, "b", False),
        ({"$nin": ["a", "b"]}, "c", True),
        ({"$nin": ["a", "b"]}, None, True),
        ({"$like": "gpt%"}, "gpt-4o", True),
        ({"$like": "gpt%"}, "GPT-4o", False),
        ({"$like": "gpt-_"}, "gpt-4o", False),
        ({"$ilike": "gpt%"}, "GPT-4o", True),
        ({"$like": "g_t"}, "gpt", True),
        ({"$like": "g_t"}, "gt", False),
        ({"$like": "100\\%"}, "100%", True),
        ({"$like": "100\\%"}, "1000", False),
        ({"$like": "a.b"}, "axb", False),  # only % and _ are wildcards
        ({"$like": "%"}, "line\nbreak", True),
        ({"$nlike": "gpt%"}, "claude", True),
        ({"$nilike": "GPT%"}, "gpt-4", False),
        ({"$gt": "b"}, "c", True),
        ({"$gte": "b"}, "b", True),
        ({"$lt": "b"}, "B", True),  # code-point order: uppercase first
        ({"$lte": "b"}, "c", False),
        ({"$lte": "b"}, None, False),
        ({"$and": [{"$like": "gpt%"}, {"$ne": "gpt-4"}]}, "gpt-4o", True),
        ({"$and": [{"$like": "gpt%"}, {"$ne": "gpt-4"}]}, "gpt-4", False),
        ({"$or": [{"$eq": "a"}, {"$eq": "b"}]}, "b", True),
        ({"$or": [{"$eq": "a"}, {"$ne": "b"}]}, None, True),
        ({"$or": [{"$eq": "a"}, {"$and": [{"$gt": "m"}, {"$lt": "p"}]}]}, "n", True),
        ({"$ne": "gpt-4"}, "gpt-4o", True),
        ({"$like": "gpt-%"}, "gpt-4o", True),
        ({"$like": "a.c"}, "abc", False),
        ({"$nlike": "gpt-%"}, "claude", True),
        ({"$ilike": "GPT%"}, "gpt-4", True),
        ({"$lt": "b"}, "a", True),
    ],
)
def test_meaning(raw: object, value: str | None, expected: bool) -> None:
    assert matches(raw, value) is expected


def test_parsing_keeps_the_structure() -> None:
    assert parse_filter({"$or": [{"$in": ["a"]}, {"$eq": "b"}]}, "f") == StringFilter(
        "$or", (StringFilter("$in", ("a",)), StringFilter("$eq", "b"))
    )


@pytest.mark.parametrize(
    ("raw", "field", "problem"),
    [
        ("gpt-4", "f", "give an object with exactly one operator"),
        ({}, "f", "give an object with exactly one operator"),
        ({"$eq": "a", "$ne": "b"}, "f", "give an object with exactly one operator"),
        ({"$regex": "a"}, "f", "unknown operator '$regex'"),
        ({"$eq": ""}, "f.$eq", "give a non-empty string"),
        ({"$eq": 5}, "f.$eq", "give a non-empty string"),
        ({"$eq": "nul\x00"}, "f.$eq", "must not contain NUL characters"),
        ({"$in": []}, "f.$in", "give a non-empty list"),
        ({"$in": "a"}, "f.$in", "give a non-empty list"),
        ({"$in": ["a", ""]}, "f.$in.1", "give a non-empty string"),
        ({"$and": [{"$eq": "a"}, {"$nope": "b"}]}, "f.$and.1", "unknown operator"),
        ({"$or": [{"$eq": "a"}, {"$bad": "b"}]}, "f.$or.1", "unknown operator"),
    ],
)
def test_parsing_errors_name_the_place(raw: object, field: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_filter(raw, "f")
    assert raised.value.field == field
    assert raised.value.errors[0].message.startswith(problem)
    assert raised.value.message == f"{field}: {raised.value.errors[0].message}"


def test_nesting_is_bounded() -> None:
    raw: object = {"$eq": "a"}
    for _ in range(7):
        raw = {"$and": [raw]}
    assert matches(raw, "a") is True  # eight levels
    raw = {"$and": [raw]}
    with pytest.raises(InvalidInput, match="nest at most"):
        parse_filter(raw, "f")


texts = st.text(alphabet="ab%_-xyz", min_size=1, max_size=6)
plain_texts = st.text(alphabet="abc-XYZ", min_size=1, max_size=6)


@given(pattern=plain_texts, value=st.text(alphabet="abc-XYZ", max_size=6))
def test_like_without_wildcards_is_equality(pattern: str, value: str) -> None:
    assert matches({"$like": pattern}, value) is (value == pattern)
    assert matches({"$ilike": pattern}, value) is (value.lower() == pattern.lower())


@given(pattern=texts, value=st.text(alphabet="ab%_-xyz", max_size=6))
def test_negations_are_complements(pattern: str, value: str) -> None:
    for positive, negative in (("$eq", "$ne"), ("$like", "$nlike"), ("$ilike", "$nilike")):
        assert matches({positive: pattern}, value) is not matches({negative: pattern}, value)


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
    parsed = parse_filter(document, "f")
    assert parsed.to_document() == document
    assert parse_filter(parsed.to_document(), "f") == parsed
