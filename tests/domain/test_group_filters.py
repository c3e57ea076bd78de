"""Group-by value filters (FilterString): parsing and the reference meaning."""

from __future__ import annotations

import pytest

from allotment.domain.group_filters import StringFilter, parse_filter


def matches(raw: object, value: str | None) -> bool:
    return parse_filter(raw, "f").matches(value)


@pytest.mark.parametrize(
    ("raw", "value", "expected"),
    [
        ({"$eq": "gpt-4"}, "gpt-4", True),
        ({"$eq": "gpt-4"}, "GPT-4", False),
        ({"$ne": "gpt-4"}, "mini", True),
        ({"$ne": "gpt-4"}, None, True),
        ({"$eq": "gpt-4"}, None, False),
        ({"$in": ["a", "b"]}, "b", True),
        ({"$nin": ["a", "b"]}, "c", True),
        ({"$nin": ["a", "b"]}, None, True),
        ({"$like": "gpt%"}, "gpt-4o", True),
        ({"$like": "gpt%"}, "GPT-4o", False),
        ({"$ilike": "gpt%"}, "GPT-4o", True),
        ({"$like": "g_t"}, "gpt", True),
        ({"$like": "g_t"}, "gt", False),
        ({"$like": "100\\%"}, "100%", True),
        ({"$like": "100\\%"}, "1000", False),
        ({"$like": "a.b"}, "axb", False),
        ({"$like": "%"}, "line\nbreak", True),
        ({"$nlike": "gpt%"}, "claude", True),
        ({"$nilike": "GPT%"}, "gpt-4", False),
        ({"$gt": "b"}, "c", True),
        ({"$gte": "b"}, "b", True),
        ({"$lt": "b"}, "B", True),  # code-point order: uppercase first
        ({"$lte": "b"}, None, False),
        ({"$and": [{"$like": "gpt%"}, {"$ne": "gpt-4"}]}, "gpt-4o", True),
        ({"$and": [{"$like": "gpt%"}, {"$ne": "gpt-4"}]}, "gpt-4", False),
        ({"$or": [{"$eq": "a"}, {"$eq": "b"}]}, "b", True),
        ({"$or": [{"$eq": "a"}, {"$ne": "b"}]}, None, True),
    ],
)
def test_meaning(raw: object, value: str | None, expected: bool) -> None:
    assert matches(raw, value) is expected


def test_parsing_keeps_the_structure() -> None:
    assert parse_filter({"$or": [{"$in": ["a"]}, {"$eq": "b"}]}, "f") == StringFilter(
        "$or", (StringFilter("$in", ("a",)), StringFilter("$eq", "b"))
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("gpt-4", "f: give an object with exactly one operator"),
        ({}, "f: give an object with exactly one operator"),
        ({"$eq": "a", "$ne": "b"}, "f: give an object with exactly one operator"),
        ({"$regex": "a"}, "f: unknown operator '$regex'"),
        ({"$eq": ""}, "f.$eq: give a non-empty string"),
        ({"$eq": 5}, "f.$eq: give a non-empty string"),
        ({"$in": []}, "f.$in: give a non-empty list"),
        ({"$in": ["a", ""]}, "f.$in[1]: give a non-empty string"),
        ({"$and": [{"$eq": "a"}, {"$nope": "b"}]}, "f.$and[1]: unknown operator"),
    ],
)
def test_parsing_errors_name_the_place(raw: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("$", r"\$").replace("[", r"\[")):
        parse_filter(raw, "f")


def test_nesting_is_bounded() -> None:
    raw: object = {"$eq": "a"}
    for _ in range(10):
        raw = {"$and": [raw]}
    with pytest.raises(ValueError, match="nest at most"):
        parse_filter(raw, "f")
