"""Features: key rules, meter checks, filters, archiving, lookups by id and key."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from allotment.domain.features import FeatureFilter, FeatureOrderBy, NewFeature
from allotment.domain.group_filters import StringFilter
from allotment.domain.listing import SortOrder, Window
from allotment.errors import Conflict, InvalidInput, NotFound
from allotment.services import features
from allotment.services.context import ServiceContext
from tests.conftest import SettableClock
from tests.factories import make_meter

GPT4 = StringFilter("$eq", "gpt-4")


def test_create_metered_feature_with_filters(context: ServiceContext, clock: SettableClock) -> None:
    make_meter(context, "tokens", group_by={"model": "$.model", "type": "$.type"})
    created = features.create_feature(
        context,
        NewFeature(
            key="gpt4_tokens",
            name="GPT-4 tokens",
            meter_slug="tokens",
            group_by_filters={"model": GPT4, "type": StringFilter("$eq", "input")},
            metadata={"team": "ai"},
        ),
    )
    assert created.created_at == created.updated_at == clock()
    assert created.equality_filters == {"model": "gpt-4", "type": "input"}
    assert features.get_feature(context, created.id) == created
    assert features.get_feature(context, "gpt4_tokens") == created


@pytest.mark.parametrize(
    "key",
    ["Tokens", "ai-tokens", "a__b", "_a", "a" * 65, "01arz3ndektsv4rrffq69g5fav", ""],
)
def test_bad_keys_are_refused(context: ServiceContext, key: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        features.create_feature(context, NewFeature(key=key, name="x"))
    assert raised.value.field == "key"


def test_meter_must_exist_be_live_and_fit(context: ServiceContext) -> None:
    make_meter(context, "gone", deleted=True)
    make_meter(context, "average", aggregation="AVG")
    make_meter(context, "calls", aggregation="COUNT", group_by={"region": "$.region"})

    with pytest.raises(NotFound) as missing:
        features.create_feature(context, NewFeature(key="f", name="F", meter_slug="gone"))
    assert missing.value.field == "meterSlug"
    with pytest.raises(InvalidInput) as wrong_aggregation:
        features.create_feature(context, NewFeature(key="f", name="F", meter_slug="average"))
    assert wrong_aggregation.value.field == "meterSlug"
    assert "AVG" in wrong_aggregation.value.message
    with pytest.raises(InvalidInput) as unknown_key:
        features.create_feature(
            context,
            NewFeature(key="f", name="F", meter_slug="calls", group_by_filters={"model": GPT4}),
        )
    assert unknown_key.value.field == "meterGroupByFilters.model"
    with pytest.raises(InvalidInput) as no_meter:
        features.create_feature(
            context, NewFeature(key="f", name="F", group_by_filters={"m": GPT4})
        )
    assert no_meter.value.field == "meterGroupByFilters"
    for aggregation in ("SUM", "COUNT", "UNIQUE_COUNT", "LATEST"):
        slug = aggregation.lower()
        make_meter(context, slug, aggregation=aggregation)
        assert (
            features.create_feature(
                context, NewFeature(key=f"on_{slug}", name=slug, meter_slug=slug)
            ).meter_slug
            == slug
        )


def test_live_key_conflicts_until_archived(context: ServiceContext, clock: SettableClock) -> None:
    first = features.create_feature(context, NewFeature(key="sso", name="SSO"))
    with pytest.raises(Conflict) as raised:
        features.create_feature(context, NewFeature(key="sso", name="SSO again"))
    assert (raised.value.field, raised.value.conflicting_entity_id) == ("key", first.id)

    clock.advance(timedelta(minutes=1))
    archived = features.archive_feature(context, "sso")
    assert archived.archived_at == archived.updated_at == clock()
    second = features.create_feature(context, NewFeature(key="sso", name="SSO v2"))

    assert features.get_feature(context, "sso") == second
    with pytest.raises(NotFound):
        features.get_feature(context, first.id)
    with context.database.unit_of_work() as uow:
        assert features.find_feature(uow, first.id, include_archived=True) == archived
        assert features.find_feature(uow, "sso", include_archived=True) == second
    # Archiving again by id changes nothing; by key it archives the live one.
    assert features.archive_feature(context, first.id) == archived
    clock.advance(timedelta(minutes=1))
    features.archive_feature(context, "sso")
    with context.database.unit_of_work() as uow:
        assert features.find_feature(uow, "sso") is None
        latest = features.find_feature(uow, "sso", include_archived=True)
    assert latest is not None and latest.id == second.id
    with pytest.raises(NotFound):
        features.archive_feature(context, "sso")


def test_concurrent_creates_of_one_key_make_one_feature(context: ServiceContext) -> None:
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def create() -> None:
        barrier.wait()
        try:
            features.create_feature(context, NewFeature(key="racer", name="R"))
            outcomes.append("created")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict", "conflict", "conflict", "created"]


def test_list_filters_orders_and_windows(context: ServiceContext, clock: SettableClock) -> None:
    make_meter(context, "tokens")
    make_meter(context, "calls", aggregation="COUNT")
    for key, name, meter in [
        ("c_feature", "Alpha", "tokens"),
        ("a_feature", "Charlie", "calls"),
        ("b_feature", "Bravo", None),
    ]:
        features.create_feature(context, NewFeature(key=key, name=name, meter_slug=meter))
        clock.advance(timedelta(seconds=1))
    features.archive_feature(context, "b_feature")

    def keys(criteria: FeatureFilter, window: Window = Window()) -> list[str]:
        return [f.key for f in features.list_features(context, criteria, window).items]

    assert keys(FeatureFilter()) == ["a_feature", "c_feature"]
    assert keys(FeatureFilter(include_archived=True)) == ["a_feature", "b_feature", "c_feature"]
    assert keys(FeatureFilter(order_by=FeatureOrderBy.NAME)) == ["c_feature", "a_feature"]
    assert keys(FeatureFilter(meter_slugs=("calls", "nope"))) == ["a_feature"]
    newest_first = FeatureFilter(
        include_archived=True, order_by=FeatureOrderBy.CREATED_AT, order=SortOrder.DESC
    )
    assert keys(newest_first, Window(offset=1, limit=1)) == ["a_feature"]
    assert features.list_features(context, newest_first, Window(limit=1)).total_count == 3
