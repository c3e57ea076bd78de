"""Creating, overriding, deleting and listing entitlements, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from allotment.domain.entitlement_requests import EntitlementRequest, MeasureUsageFromPreset
from allotment.domain.entitlements import EntitlementFilter, EntitlementType
from allotment.domain.grant_requests import GrantDefaults, RecurrenceRequest
from allotment.domain.listing import SortOrder, Window
from allotment.domain.subjects import SubjectUpsert
from allotment.errors import Conflict, InvalidInput, NotFound
from allotment.services import entitlement_values, entitlements, features, grants, subjects
from allotment.services.context import ServiceContext
from allotment.services.entitlement_owners import CustomerOwner, SubjectOwner
from tests.conftest import SettableClock
from tests.factories import ACME, JANUARY, grant, make_customer, make_feature, metered, send_usage


@pytest.fixture
def setup(setup: ServiceContext) -> ServiceContext:
    """The suite's setup, and the boolean feature `saml_sso`."""
    make_feature(setup, "saml_sso", meter_slug=None)
    return setup


def test_metered_defaults_measure_from_the_current_period_and_issue_the_default_grant(
    setup: ServiceContext,
) -> None:
    view = entitlements.create_entitlement(setup, ACME, metered(issue_after_reset=10_000_000))

    e = view.entitlement
    assert e.measure_usage_from == JANUARY  # clock Jan 15 12:00, monthly from Jan 1
    assert e.active_from == datetime(2024, 1, 15, 12, tzinfo=UTC)
    assert (view.current_usage_period.start, view.current_usage_period.end) == (  # type: ignore[union-attr]
        JANUARY,
        datetime(2024, 2, 1, tzinfo=UTC),
    )
    assert view.last_reset == JANUARY
    assert e.issue_after_reset == Decimal(10_000_000) and e.issue_after_reset_priority == 1
    (issued,) = grants.list_entitlement_grants(setup, ACME, "ai_tokens").items
    g = issued.grant
    assert (g.amount, g.priority, g.effective_at) == (Decimal(10_000_000), 1, JANUARY)
    assert (g.min_rollover_amount, g.max_rollover_amount) == (Decimal(10_000_000),) * 2
    assert (g.expiration, g.expires_at) == (None, None)
    assert g.annotations == {"issueAfterReset": True}


def test_measure_usage_from_now_an_explicit_time_and_a_default_anchor(
    setup: ServiceContext, clock: SettableClock
) -> None:
    clock.set(datetime(2024, 1, 15, 12, 0, 30, tzinfo=UTC))
    now_view = entitlements.create_entitlement(
        setup, ACME, metered(measure_usage_from=MeasureUsageFromPreset.NOW, anchor=None)
    )
    assert now_view.entitlement.measure_usage_from == datetime(2024, 1, 15, 12, tzinfo=UTC)
    assert now_view.entitlement.usage_period is not None
    assert now_view.entitlement.usage_period.anchor == datetime(2024, 1, 15, 12, tzinfo=UTC)

    make_customer(setup, "globex", ("globex",))
    explicit = entitlements.create_entitlement(
        setup,
        CustomerOwner("globex"),
        metered(measure_usage_from=datetime(2024, 1, 10, 10, 30, 45, tzinfo=UTC)),
    )
    assert explicit.entitlement.measure_usage_from == datetime(2024, 1, 10, 10, 30, tzinfo=UTC)
    # The first period starts at measurement start, not at the anchor's boundary.
    assert explicit.current_usage_period is not None
    assert explicit.current_usage_period.start == datetime(2024, 1, 10, 10, 30, tzinfo=UTC)


def test_issue_after_reset_zero_creates_no_grant(setup: ServiceContext) -> None:
    entitlements.create_entitlement(setup, ACME, metered(issue_after_reset=0))
    assert grants.list_entitlement_grants(setup, ACME, "ai_tokens").items == []


def test_one_live_entitlement_per_customer_and_feature(
    setup: ServiceContext, clock: SettableClock
) -> None:
    first = entitlements.create_entitlement(setup, ACME, metered())
    with pytest.raises(Conflict) as refused:
        entitlements.create_entitlement(setup, ACME, metered())
    assert refused.value.conflicting_entity_id == first.entitlement.id

    clock.advance(timedelta(minutes=5))
    entitlements.delete_entitlement(setup, ACME, first.entitlement.id)
    second = entitlements.create_entitlement(setup, ACME, metered())
    assert second.entitlement.id != first.entitlement.id


def test_a_new_subject_gets_a_customer_keyed_by_it(setup: ServiceContext) -> None:
    view = entitlements.create_entitlement(
        setup,
        SubjectOwner("user-42"),
        EntitlementRequest(type=EntitlementType.BOOLEAN, feature_key="saml_sso"),
    )
    assert view.owner.customer_key == "user-42"
    assert view.owner.subject_key == "user-42"
    listed = entitlements.list_owner_entitlements(setup, CustomerOwner("user-42")).items
    assert [v.entitlement.id for v in listed] == [view.entitlement.id]
    assert entitlement_values.entitlement_value(
        setup, SubjectOwner("user-42"), "saml_sso"
    ).has_access


def test_reads_of_an_unknown_subject_are_not_found_and_a_bare_subject_has_nothing(
    setup: ServiceContext,
) -> None:
    with pytest.raises(NotFound) as missing:
        entitlements.list_owner_entitlements(setup, SubjectOwner("nobody"))
    assert missing.value.field == "subjectIdOrKey"
    with pytest.raises(NotFound):
        entitlement_values.entitlement_value(setup, SubjectOwner("nobody"), "saml_sso")

    (bare,) = subjects.upsert_subjects(setup, [SubjectUpsert(key="bare")])
    assert entitlements.list_owner_entitlements(setup, SubjectOwner("bare")).items == []
    by_id = SubjectOwner(bare.id)
    assert entitlement_values.entitlement_value(setup, by_id, "saml_sso").has_access is False
    # Creating through the subject's id provisions a customer keyed by the subject's key.
    view = entitlements.create_entitlement(
        setup, by_id, EntitlementRequest(EntitlementType.BOOLEAN, "saml_sso")
    )
    assert view.owner.customer_key == "bare"
    assert entitlement_values.entitlement_value(setup, by_id, "saml_sso").has_access is True


def test_static_config_is_kept_verbatim_and_boolean_takes_a_display_period(
    setup: ServiceContext,
) -> None:
    make_feature(setup, "models", meter_slug=None)
    config = '{"allowed": ["gpt-4o-mini"]}'
    static = entitlements.create_entitlement(
        setup, ACME, EntitlementRequest(EntitlementType.STATIC, "models", config=config)
    )
    assert static.entitlement.config == config
    assert static.current_usage_period is None and static.last_reset is None

    boolean = entitlements.create_entitlement(
        setup,
        ACME,
        EntitlementRequest(
            EntitlementType.BOOLEAN,
            "saml_sso",
            usage_period=RecurrenceRequest("WEEK", datetime(2024, 1, 1, tzinfo=UTC)),
        ),
    )
    assert boolean.current_usage_period is not None
    assert boolean.current_usage_period.start == datetime(2024, 1, 15, tzinfo=UTC)
    assert boolean.current_usage_period.end == datetime(2024, 1, 22, tzinfo=UTC)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (EntitlementRequest(EntitlementType.STATIC, "saml_sso", config="{nope"), "config"),
        (EntitlementRequest(EntitlementType.STATIC, "saml_sso"), "config"),
        (
            EntitlementRequest(EntitlementType.BOOLEAN, "saml_sso", is_soft_limit=False),
            "isSoftLimit",
        ),
        (
            EntitlementRequest(
                EntitlementType.STATIC, "saml_sso", config="{}", issue_after_reset=Decimal(1)
            ),
            "issueAfterReset",
        ),
        (
            EntitlementRequest(
                EntitlementType.BOOLEAN,
                "saml_sso",
                measure_usage_from=MeasureUsageFromPreset.NOW,
            ),
            "measureUsageFrom",
        ),
        (EntitlementRequest(EntitlementType.METERED, "ai_tokens"), "usagePeriod"),
        (metered(interval="PT30M"), "usagePeriod.interval"),
        (metered(interval="fortnightly"), "usagePeriod.interval"),
        (metered(issue_after_reset_priority=3), "issueAfterResetPriority"),
        (metered(issue_after_reset="-1"), "issueAfterReset"),
        (metered(feature_key="saml_sso"), "featureKey"),
        (EntitlementRequest(EntitlementType.BOOLEAN), "featureKey"),
    ],
)
def test_invalid_requests_name_the_field(
    setup: ServiceContext, request_: EntitlementRequest, field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        entitlements.create_entitlement(setup, ACME, request_)
    assert field in [e.field for e in refused.value.errors]


def test_an_unknown_or_archived_feature_is_not_found(setup: ServiceContext) -> None:
    with pytest.raises(NotFound) as unknown:
        entitlements.create_entitlement(setup, ACME, metered(feature_key="gpu_hours"))
    assert unknown.value.field == "featureKey"
    features.archive_feature(setup, "saml_sso")
    with pytest.raises(NotFound) as archived:
        entitlements.create_entitlement(
            setup, ACME, EntitlementRequest(EntitlementType.BOOLEAN, "saml_sso")
        )
    assert "archived" in archived.value.message


def test_delete_ends_the_entitlement_and_its_grants_but_earlier_reads_still_see_it(
    setup: ServiceContext, clock: SettableClock
) -> None:
    view = entitlements.create_entitlement(setup, ACME, metered(issue_after_reset=1000))
    send_usage(setup, 300, datetime(2024, 1, 10, tzinfo=UTC))
    clock.set(datetime(2024, 1, 20, tzinfo=UTC))
    entitlements.delete_entitlement(setup, ACME, "ai_tokens")

    gone = entitlement_values.entitlement_value(setup, ACME, "ai_tokens")
    assert (gone.has_access, gone.balance) == (False, None)
    before = entitlement_values.entitlement_value(
        setup, ACME, "ai_tokens", datetime(2024, 1, 19, tzinfo=UTC)
    )
    assert (before.has_access, before.balance, before.usage) == (True, 700, 300)
    by_id = entitlements.get_entitlement(setup, ACME, view.entitlement.id).entitlement
    assert by_id.deleted_at == datetime(2024, 1, 20, tzinfo=UTC)
    (issued,) = grants.list_entitlement_grants(
        setup, ACME, view.entitlement.id, include_deleted=True
    ).items
    assert issued.grant.deleted_at == datetime(2024, 1, 20, tzinfo=UTC)
    assert grants.list_entitlement_grants(setup, ACME, view.entitlement.id).items == []
    with pytest.raises(NotFound):
        entitlements.delete_entitlement(setup, ACME, view.entitlement.id)


def test_override_ends_the_old_one_and_starts_fresh(
    setup: ServiceContext, clock: SettableClock
) -> None:
    old = entitlements.create_entitlement(setup, ACME, metered(issue_after_reset=1000))
    grants.create_grant(
        setup, ACME, "ai_tokens", grant(500, clock(), expiration=("MONTH", 1)), GrantDefaults.V2
    )
    send_usage(setup, 200, datetime(2024, 1, 10, tzinfo=UTC))
    with pytest.raises(InvalidInput) as same_instant:
        entitlements.override_entitlement(setup, ACME, "ai_tokens", metered(issue_after_reset=50))
    assert same_instant.value.field == "entitlementIdOrFeatureKey"

    clock.set(datetime(2024, 1, 16, 9, 30, tzinfo=UTC))
    new = entitlements.override_entitlement(setup, ACME, "ai_tokens", metered(issue_after_reset=50))

    assert new.entitlement.measure_usage_from == datetime(2024, 1, 16, 9, 30, tzinfo=UTC)
    ended = entitlements.get_entitlement(setup, ACME, old.entitlement.id).entitlement
    assert ended.deleted_at == ended.active_to == clock()
    value = entitlement_values.entitlement_value(setup, ACME, "ai_tokens")
    assert (value.balance, value.usage) == (50, 0)  # no grants carried, earlier usage ignored
    before = entitlement_values.entitlement_value(
        setup, ACME, "ai_tokens", datetime(2024, 1, 16, tzinfo=UTC)
    )
    assert before.balance == 1300  # the old one, 1000 + 500 - 200


def test_override_keeps_the_feature_and_needs_a_live_entitlement(
    setup: ServiceContext, clock: SettableClock
) -> None:
    entitlements.create_entitlement(setup, ACME, metered())
    clock.advance(timedelta(hours=1))
    with pytest.raises(InvalidInput) as other_feature:
        entitlements.override_entitlement(
            setup, ACME, "ai_tokens", EntitlementRequest(EntitlementType.BOOLEAN, "saml_sso")
        )
    assert other_feature.value.field == "featureKey"
    with pytest.raises(NotFound):
        entitlements.override_entitlement(setup, ACME, "saml_sso", metered())


def test_lists_filter_and_page(setup: ServiceContext, clock: SettableClock) -> None:
    make_customer(setup, "globex", ("globex", "globex-eu"))
    a = entitlements.create_entitlement(setup, ACME, metered())
    clock.advance(timedelta(minutes=1))
    b = entitlements.create_entitlement(
        setup, ACME, EntitlementRequest(EntitlementType.BOOLEAN, "saml_sso")
    )
    clock.advance(timedelta(minutes=1))
    c = entitlements.create_entitlement(setup, SubjectOwner("globex-eu"), metered())
    clock.advance(timedelta(minutes=1))
    entitlements.delete_entitlement(setup, ACME, b.entitlement.id)

    def ids(result: object) -> list[str]:
        return [v.entitlement.id for v in result.items]  # type: ignore[attr-defined]

    assert ids(entitlements.list_entitlements(setup, EntitlementFilter())) == [
        a.entitlement.id,
        c.entitlement.id,
    ]
    everything = entitlements.list_entitlements(setup, EntitlementFilter(include_deleted=True))
    assert everything.total_count == 3
    by_subject = entitlements.list_entitlements(
        setup, EntitlementFilter(subject_keys=["globex-eu"])
    )
    assert ids(by_subject) == [c.entitlement.id]
    assert by_subject.items[0].owner.subject_key == "globex"  # the first of its subject keys
    by_type = EntitlementFilter(types=[EntitlementType.BOOLEAN], include_deleted=True)
    assert ids(entitlements.list_entitlements(setup, by_type)) == [b.entitlement.id]
    page = entitlements.list_entitlements(
        setup,
        EntitlementFilter(include_deleted=True),
        window=Window(offset=1, limit=1),
        order=SortOrder.DESC,
    )
    assert (ids(page), page.total_count) == ([b.entitlement.id], 3)
    owned = entitlements.list_owner_entitlements(setup, ACME, include_deleted=True)
    assert ids(owned) == [a.entitlement.id, b.entitlement.id]
