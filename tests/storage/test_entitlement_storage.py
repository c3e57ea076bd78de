"""Entitlements, resets and grants round-trip exactly through both databases, and the schema
refuses a second live entitlement for one customer and feature."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import insert

from allotment.domain.entitlements import (
    Entitlement,
    EntitlementFilter,
    EntitlementType,
    GrantFilter,
    GrantRecord,
)
from allotment.domain.periods import Expiration, Interval, Recurrence
from allotment.domain.usage_periods import ManualReset
from allotment.errors import Conflict
from allotment.storage import Database
from allotment.storage.tables import customer_subjects, customers, features

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _seed_customer_and_feature(database: Database) -> None:
    with database.engine.begin() as connection:
        connection.execute(
            insert(customers).values(
                id="01HZZZZZZZZZZZZZZZZZZCUST1",
                key="acme",
                name="ACME",
                created_at=T0,
                updated_at=T0,
            )
        )
        connection.execute(
            insert(customer_subjects).values(
                customer_id="01HZZZZZZZZZZZZZZZZZZCUST1", subject_key="acme-subject"
            )
        )
        connection.execute(
            insert(features).values(
                id="01HZZZZZZZZZZZZZZZZZZFEAT1",
                key="ai_tokens",
                name="AI",
                created_at=T0,
                updated_at=T0,
            )
        )


def _metered(entitlement_id: str = "01HZZZZZZZZZZZZZZZZZZENT01") -> Entitlement:
    return Entitlement(
        id=entitlement_id,
        type=EntitlementType.METERED,
        customer_id="01HZZZZZZZZZZZZZZZZZZCUST1",
        feature_id="01HZZZZZZZZZZZZZZZZZZFEAT1",
        feature_key="ai_tokens",
        active_from=T0,
        created_at=T0,
        updated_at=T0,
        usage_period=Recurrence(Interval.parse("MONTH"), datetime(2024, 1, 31, tzinfo=UTC)),
        measure_usage_from=T0,
        is_soft_limit=True,
        issue_after_reset=Decimal("10000000.5"),
        issue_after_reset_priority=3,
        preserve_overage_at_reset=True,
        metadata={"plan": "pro"},
    )


def test_entitlement_round_trip_and_lookups(database: Database) -> None:
    _seed_customer_and_feature(database)
    entitlement = _metered()
    with database.unit_of_work(write=True) as uow:
        uow.entitlements.add(entitlement)
        uow.commit()
    with database.unit_of_work() as uow:
        stored = uow.entitlements.get(entitlement.id)
        assert stored == entitlement
        assert stored is not None and stored.usage_period is not None
        assert stored.usage_period.interval.iso == "P1M"
        assert (
            uow.entitlements.live_for_customer_feature(entitlement.customer_id, "ai_tokens")
            == entitlement
        )
        by_subject, total = uow.entitlements.search(
            EntitlementFilter(subject_keys=["acme-subject"])
        )
        assert (by_subject, total) == ([entitlement], 1)
        by_customer_key, _ = uow.entitlements.search(EntitlementFilter(subject_keys=["acme"]))
        assert by_customer_key == [entitlement]
        assert uow.entitlements.search(EntitlementFilter(subject_keys=["nobody"])) == ([], 0)


def test_second_live_entitlement_for_customer_and_feature_is_refused(database: Database) -> None:
    _seed_customer_and_feature(database)
    with database.unit_of_work(write=True) as uow:
        uow.entitlements.add(_metered())
        uow.commit()
    with pytest.raises(Conflict) as refused, database.unit_of_work(write=True) as uow:
        uow.entitlements.add(_metered("01HZZZZZZZZZZZZZZZZZZENT02"))
        uow.commit()
    assert refused.value.conflicting_entity_id == "01HZZZZZZZZZZZZZZZZZZENT01"


def test_ended_entitlement_frees_the_feature_but_stays_readable_in_the_past(
    database: Database,
) -> None:
    _seed_customer_and_feature(database)
    end = T0 + timedelta(days=10)
    with database.unit_of_work(write=True) as uow:
        uow.entitlements.add(_metered())
        uow.entitlements.end("01HZZZZZZZZZZZZZZZZZZENT01", end)
        uow.entitlements.add(
            Entitlement(**{**_metered("01HZZZZZZZZZZZZZZZZZZENT02").__dict__, "active_from": end})
        )
        uow.commit()
    with database.unit_of_work() as uow:
        customer = "01HZZZZZZZZZZZZZZZZZZCUST1"
        before = uow.entitlements.for_customer_feature_at(
            customer, "ai_tokens", end - timedelta(minutes=1)
        )
        after = uow.entitlements.for_customer_feature_at(customer, "ai_tokens", end)
        assert before is not None and before.id.endswith("ENT01")
        assert after is not None and after.id.endswith("ENT02")
        assert [e.id for e in uow.entitlements.active_for_customer(customer, end)] == [after.id]
        _, total = uow.entitlements.search(EntitlementFilter(include_deleted=True))
        assert total == 2


def test_resets_and_grants_round_trip_exactly(database: Database) -> None:
    _seed_customer_and_feature(database)
    entitlement_id = "01HZZZZZZZZZZZZZZZZZZENT01"
    grant = GrantRecord(
        id="01HZZZZZZZZZZZZZZZZZGRANT1",
        entitlement_id=entitlement_id,
        amount=Decimal("0.1"),
        priority=5,
        effective_at=T0,
        min_rollover_amount=Decimal("0.05"),
        max_rollover_amount=Decimal("123456789012345.123456789"),
        created_at=T0,
        updated_at=T0,
        expiration=Expiration.parse("MONTH", 1),
        expires_at=datetime(2024, 2, 1, tzinfo=UTC),
        recurrence=Recurrence(Interval.parse("P1W"), T0),
        metadata={"reason": "promo"},
        annotations={"issueAfterReset": True},
    )
    with database.unit_of_work(write=True) as uow:
        uow.entitlements.add(_metered())
        uow.entitlements.add_reset(
            "01HZZZZZZZZZZZZZZZZZRESET1",
            entitlement_id,
            ManualReset(T0 + timedelta(days=3), T0, True),
            T0,
        )
        uow.grants.add(grant)
        uow.commit()
    with database.unit_of_work(write=True) as uow:
        assert uow.entitlements.resets(entitlement_id) == [
            ManualReset(T0 + timedelta(days=3), T0, True)
        ]
        assert uow.grants.get(grant.id) == grant
        uow.grants.void(grant.id, T0 + timedelta(days=2), T0 + timedelta(days=2))
        uow.commit()
    with database.unit_of_work() as uow:
        voided = uow.grants.get(grant.id)
        assert voided is not None and voided.voided_at == T0 + timedelta(days=2)
        assert voided.to_engine().active_at(T0 + timedelta(days=1))
        assert not voided.to_engine().active_at(T0 + timedelta(days=2))
        assert uow.grants.search(GrantFilter(customers=["acme"]))[1] == 1
        assert uow.grants.search(GrantFilter(features=["other"]))[1] == 0
        assert uow.grants.search(GrantFilter(subject_keys=["acme-subject"]))[0] == [voided]


def test_commits_are_durable_before_they_return(database: Database) -> None:
    """An acknowledged ingest must survive a crash: the commit is flushed before it returns."""
    with database.engine.connect() as connection:
        if database.dialect == "sqlite":
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        else:
            assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
