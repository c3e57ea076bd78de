"""Customers: searching and paging, creating one, and a customer's page with every entitlement
at a glance (and, for metered ones, the burn-down, the grants and the resets)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from markupsafe import Markup

from allotment.dashboard.auth import CurrentSession, Writer, WriterPage
from allotment.dashboard.charts import Series, time_chart, usage_bar
from allotment.dashboard.forms import FormErrors, FormInput, parse_list
from allotment.dashboard.web import context_of, redirect, render
from allotment.domain.access import EntitlementValue
from allotment.domain.customers import Customer, CustomerDetails
from allotment.domain.history import History, WindowSize
from allotment.domain.listing import Window
from allotment.domain.subscriptions import SubscriptionStatus
from allotment.domain.usage_periods import ManualReset
from allotment.errors import AllotmentError, InvalidInput
from allotment.services import customers as customers_service
from allotment.services import entitlement_history, entitlement_resets, entitlement_values
from allotment.services import entitlements as entitlements_service
from allotment.services import grants as grants_service
from allotment.services import subscriptions as subscriptions_service
from allotment.services.context import ServiceContext
from allotment.services.entitlement_owners import CustomerOwner
from allotment.services.entitlements import EntitlementView
from allotment.services.grants import GrantView

router = APIRouter()

PAGE_SIZE = 25
CustomerId = Annotated[str, Path(min_length=1, max_length=256)]
CUSTOMER_INPUTS = {"usageAttribution": "subjectKeys"}
EXPIRY_CHOICES = (
    ("", "Never"),
    ("1 DAY", "In 1 day"),
    ("1 WEEK", "In 1 week"),
    ("1 MONTH", "In 1 month"),
    ("3 MONTH", "In 3 months"),
    ("1 YEAR", "In 1 year"),
)


@router.get("/customers")
def customers_page(
    request: Request,
    session: CurrentSession,
    q: Annotated[str, Query(max_length=256)] = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    errors = FormErrors()
    try:
        result = customers_service.search_customers(
            context_of(request), q, Window.of_page(page, PAGE_SIZE)
        )
        customers, total = list(result.items), result.total_count
    except InvalidInput as error:
        errors.add_error(error)
        customers, total = [], 0
    template = "customers_rows.html" if request.headers.get("HX-Request") else "customers.html"
    return render(
        request,
        template,
        session=session,
        errors=errors,
        customers=customers,
        total=total,
        q=q if not errors else "",
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        status_code=400 if errors else 200,
    )


@router.get("/customers/new")
def new_customer_page(request: Request, session: WriterPage) -> Response:
    return render(request, "customer_new.html", session=session)


@router.post("/customers/new")
def create_customer(request: Request, submission: Writer) -> Response:
    form, errors = submission.form, submission.errors
    details = _details(form)
    if not errors:
        try:
            customer = customers_service.create_customer(context_of(request), details)
        except AllotmentError as error:
            errors.add_error(error, inputs=CUSTOMER_INPUTS)
        else:
            return redirect(
                request, f"/customers/{customer.id}", flash=f"Customer {customer.name} created."
            )
    return render(
        request,
        "customer_new.html",
        session=submission.session,
        errors=errors,
        values=form.values,
        status_code=400,
    )


def _details(form: FormInput) -> CustomerDetails:
    return CustomerDetails(
        name=form.text("name"),
        key=form.optional("key"),
        subject_keys=tuple(parse_list(form.optional("subjectKeys"))),
        primary_email=form.optional("primaryEmail"),
        currency=form.optional("currency"),
        description=form.optional("description"),
    )


@dataclass(frozen=True)
class GrantRow:
    view: GrantView
    remaining: object
    status: str


@dataclass(frozen=True)
class EntitlementPanel:
    """One entitlement as the customer page shows it."""

    view: EntitlementView
    value: EntitlementValue
    bar: Markup | None
    grants: list[GrantRow]
    resets: list[ManualReset]
    chart: Markup | None
    history: History | None

    @property
    def is_over(self) -> bool:
        return (self.value.overage or 0) > 0 or not self.value.has_access


@router.get("/customers/{customer_id}")
def customer_page(request: Request, session: CurrentSession, customer_id: CustomerId) -> Response:
    context = context_of(request)
    customer = customers_service.get_customer(context, customer_id)
    panels = [] if customer.is_deleted else _panels(context, customer)
    now = context.clock()
    plans = subscriptions_service.list_customer_subscriptions(
        context,
        customer.id,
        statuses=(
            SubscriptionStatus.ACTIVE,
            SubscriptionStatus.CANCELED,
            SubscriptionStatus.SCHEDULED,
        ),
    ).items
    return render(
        request,
        "customer.html",
        session=session,
        customer=customer,
        panels=panels,
        subscriptions=plans,
        now=now,
        expiry_choices=EXPIRY_CHOICES,
    )


def _panels(context: ServiceContext, customer: Customer) -> list[EntitlementPanel]:
    owner = CustomerOwner(customer.id)
    now = context.clock()
    views = entitlements_service.list_owner_entitlements(context, owner).items
    values = entitlement_values.customer_access(context, customer.id, now)
    panels = []
    for view in views:
        entitlement = view.entitlement
        if not entitlement.active_at(now):
            # A subscription's entitlements of an earlier or a later plan: not today's.
            continue
        value = values.get(entitlement.feature_key, EntitlementValue(has_access=False))
        if not entitlement.is_metered:
            panels.append(EntitlementPanel(view, value, None, [], [], None, None))
            continue
        over = (value.overage or 0) > 0 or not value.has_access
        bar = usage_bar(value.usage, value.total_available_grant_amount, over=over)
        grants = grants_service.list_entitlement_grants(context, owner, entitlement.id).items
        rows = [_grant_row(grant, value, now) for grant in reversed(list(grants))]
        resets = entitlement_resets.list_resets(context, owner, entitlement.id)
        history, chart = _burn_down(context, owner, view, value, now)
        panels.append(EntitlementPanel(view, value, bar, rows, resets, chart, history))
    return panels


def _grant_row(view: GrantView, value: EntitlementValue, now: datetime) -> GrantRow:
    grant = view.grant
    if grant.deleted_at is not None:
        status = "deleted"
    elif grant.voided_at is not None:
        status = "voided"
    elif grant.expires_at is not None and grant.expires_at <= now:
        status = "expired"
    elif grant.effective_at > now:
        status = "scheduled"
    else:
        status = "active"
    remaining = (value.grant_balances or {}).get(grant.id)
    return GrantRow(view, remaining, status)


def _window_for(span: timedelta) -> WindowSize:
    if span <= timedelta(hours=3):
        return WindowSize.MINUTE
    if span <= timedelta(days=3):
        return WindowSize.HOUR
    if span <= timedelta(days=120):
        return WindowSize.DAY
    return WindowSize.MONTH


def _burn_down(
    context: ServiceContext,
    owner: CustomerOwner,
    view: EntitlementView,
    value: EntitlementValue,
    now: datetime,
) -> tuple[History | None, Markup | None]:
    """The current usage period so far: balance at each window's start, usage in it, and the
    balance now."""
    period = view.current_usage_period
    if period is None or now - period.start < timedelta(minutes=1):
        return None, None
    try:
        history = entitlement_history.entitlement_history(
            context,
            owner,
            view.entitlement.id,
            window_size=_window_for(now - period.start).value,
            start=period.start,
            end=now,
        )
    except InvalidInput:
        return None, None  # measurement starts later than this period
    windows = [w.period.start for w in history.windows] + [now]
    balance = [w.balance_at_start for w in history.windows] + [value.balance]
    usage = [w.usage for w in history.windows] + [None]
    chart = time_chart(
        windows,
        [Series("Usage", usage, kind="bar"), Series("Balance", balance, kind="line")],
        label=f"Balance and usage of {view.entitlement.feature_key} this period",
        step=True,
    )
    return history, chart
