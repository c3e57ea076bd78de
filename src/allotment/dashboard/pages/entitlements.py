"""Entitlements of a customer: create (each type), override, delete and reset, from forms that
apply the API's rules (the same domain checks) and keep what was typed when one is broken."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from allotment.dashboard.auth import Submission, Writer, WriterPage
from allotment.dashboard.formatting import input_time, number
from allotment.dashboard.forms import (
    FormErrors,
    FormInput,
    parse_amount,
    parse_integer,
    parse_time,
)
from allotment.dashboard.sessions import Session
from allotment.dashboard.web import context_of, redirect, render
from allotment.domain.customers import Customer
from allotment.domain.entitlement_requests import EntitlementRequest, MeasureUsageFromPreset
from allotment.domain.entitlements import EntitlementType
from allotment.domain.features import FeatureFilter
from allotment.domain.grant_requests import RecurrenceRequest
from allotment.domain.listing import Window
from allotment.errors import AllotmentError
from allotment.services import customers as customers_service
from allotment.services import entitlement_resets
from allotment.services import entitlements as entitlements_service
from allotment.services import features as features_service
from allotment.services.entitlement_owners import CustomerOwner
from allotment.services.entitlements import EntitlementView

router = APIRouter()

CustomerId = Annotated[str, Path(min_length=1, max_length=256)]
EntitlementId = Annotated[str, Path(min_length=1, max_length=64)]
INTERVALS = ("DAY", "WEEK", "MONTH", "YEAR")
ENTITLEMENT_INPUTS = {
    "usagePeriod": "usagePeriod.interval",
    "usagePeriod.anchor": "usagePeriod.anchor",
    "featureId": "featureKey",
    "entitlementIdOrFeatureKey": "",
    "grants": "",
}
TYPE_LABELS = {
    "metered": "Metered: a usage limit per period",
    "static": "Static: a JSON configuration",
    "boolean": "Boolean: on or off",
}


def _customer(request: Request, customer_id: str) -> Customer:
    return customers_service.get_customer(context_of(request), customer_id)


def _chosen_type(text: str | None) -> EntitlementType:
    try:
        return EntitlementType(text or "metered")
    except ValueError:
        return EntitlementType.METERED


@router.get("/customers/{customer_id}/entitlements/new")
def new_entitlement_page(
    request: Request,
    session: WriterPage,
    customer_id: CustomerId,
    type_: Annotated[str | None, Query(alias="type", max_length=16)] = None,
) -> Response:
    customer = _customer(request, customer_id)
    chosen = _chosen_type(type_)
    values = {"type": chosen.value, "usagePeriod.interval": "MONTH"}
    return _form(request, session, customer, None, chosen, FormErrors(), values)


@router.post("/customers/{customer_id}/entitlements/new")
def create_entitlement(request: Request, submission: Writer, customer_id: CustomerId) -> Response:
    customer = _customer(request, customer_id)
    return _submit(
        request,
        submission,
        customer,
        None,
        lambda wanted: entitlements_service.create_entitlement(
            context_of(request), CustomerOwner(customer.id), wanted
        ),
        lambda made: f"{customer.name} is now entitled to {made.entitlement.feature_key}.",
    )


def _submit(
    request: Request,
    submission: Submission,
    customer: Customer,
    view: EntitlementView | None,
    write: Callable[[EntitlementRequest], EntitlementView],
    flash: Callable[[EntitlementView], str],
) -> Response:
    """A create or override form sent: written and back to the customer, or the form again with
    each error next to its field and what was typed kept."""
    form, errors = submission.form, submission.errors
    entitlement_request = _request(form, errors)
    if entitlement_request is not None and not errors:
        try:
            made = write(entitlement_request)
        except AllotmentError as error:
            errors.add_error(error, inputs=ENTITLEMENT_INPUTS)
        else:
            return redirect(request, f"/customers/{customer.id}", flash=flash(made))
    chosen = _chosen_type(form.text("type"))
    return _form(
        request, submission.session, customer, view, chosen, errors, form.values, status_code=400
    )


@router.get("/customers/{customer_id}/entitlements/{entitlement_id}/override")
def override_page(
    request: Request,
    session: WriterPage,
    customer_id: CustomerId,
    entitlement_id: EntitlementId,
    type_: Annotated[str | None, Query(alias="type", max_length=16)] = None,
) -> Response:
    customer = _customer(request, customer_id)
    view = entitlements_service.get_entitlement(
        context_of(request), CustomerOwner(customer.id), entitlement_id
    )
    chosen = _chosen_type(type_ or view.entitlement.type.value)
    return _form(request, session, customer, view, chosen, FormErrors(), _values_of(view, chosen))


@router.post("/customers/{customer_id}/entitlements/{entitlement_id}/override")
def override_entitlement(
    request: Request, submission: Writer, customer_id: CustomerId, entitlement_id: EntitlementId
) -> Response:
    customer = _customer(request, customer_id)
    owner = CustomerOwner(customer.id)
    view = entitlements_service.get_entitlement(context_of(request), owner, entitlement_id)
    return _submit(
        request,
        submission,
        customer,
        view,
        lambda wanted: entitlements_service.override_entitlement(
            context_of(request), owner, view.entitlement.id, wanted
        ),
        lambda made: f"The entitlement to {made.entitlement.feature_key} was overridden.",
    )


def _form(
    request: Request,
    session: Session,
    customer: Customer,
    current: EntitlementView | None,
    chosen: EntitlementType,
    errors: FormErrors,
    values: dict[str, str],
    status_code: int = 200,
) -> Response:
    features = features_service.list_features(
        context_of(request), FeatureFilter(), Window(offset=0, limit=1000)
    ).items
    if chosen is EntitlementType.METERED:
        features = [f for f in features if f.is_metered]
    if current is not None:
        features = [f for f in features if f.key == current.entitlement.feature_key]
    return render(
        request,
        "entitlement_form.html",
        session=session,
        customer=customer,
        current=current,
        chosen=chosen.value,
        type_labels=TYPE_LABELS,
        features=features,
        feature_options=[(f.key, f"{f.name} ({f.key})") for f in features],
        interval_options=[(interval, interval.capitalize()) for interval in INTERVALS],
        errors=errors,
        values=values,
        status_code=status_code,
    )


def _values_of(view: EntitlementView, chosen: EntitlementType) -> dict[str, str]:
    """The form filled in with an entitlement's terms (for an override)."""
    e = view.entitlement
    values = {"type": chosen.value, "featureKey": e.feature_key}
    if e.usage_period is not None:
        values["usagePeriod.interval"] = e.usage_period.interval.api_name
        values["usagePeriod.anchor"] = input_time(e.usage_period.anchor)
    if chosen is EntitlementType.METERED:
        values.setdefault("usagePeriod.interval", "MONTH")
        if e.is_soft_limit:
            values["isSoftLimit"] = "on"
        if e.preserve_overage_at_reset:
            values["preserveOverageAtReset"] = "on"
        if e.issue_after_reset is not None:
            values["issueAfterReset"] = number(e.issue_after_reset)
            values["issueAfterResetPriority"] = str(e.issue_after_reset_priority or "")
    if chosen is EntitlementType.STATIC and e.config is not None:
        values["config"] = e.config
    return values


def _request(form: FormInput, errors: FormErrors) -> EntitlementRequest | None:
    """The entitlement request the form describes, as the API would read the same fields."""
    try:
        kind = EntitlementType(form.text("type"))
    except ValueError:
        errors.add("type", "choose metered, static or boolean")
        return None
    usage_period = None
    interval = form.optional("usagePeriod.interval")
    anchor = parse_time(form.optional("usagePeriod.anchor"), "usagePeriod.anchor", errors)
    if interval is not None:
        usage_period = RecurrenceRequest(interval=interval, anchor=anchor)
    elif anchor is not None:
        errors.add("usagePeriod.anchor", "an anchor needs a usage period")
    measure: MeasureUsageFromPreset | object | None = None
    preset = form.optional("measureUsageFrom")
    measure_time = parse_time(form.optional("measureUsageFromTime"), "measureUsageFromTime", errors)
    if measure_time is not None:
        measure = measure_time
    elif preset is not None:
        try:
            measure = MeasureUsageFromPreset(preset)
        except ValueError:
            errors.add("measureUsageFrom", "choose the start of the current period or now")
    return EntitlementRequest(
        type=kind,
        feature_key=form.optional("featureKey"),
        usage_period=usage_period,
        is_soft_limit=True if form.checked("isSoftLimit") else None,
        issue_after_reset=parse_amount(form.optional("issueAfterReset"), "issueAfterReset", errors),
        issue_after_reset_priority=parse_integer(
            form.optional("issueAfterResetPriority"), "issueAfterResetPriority", errors
        ),
        preserve_overage_at_reset=True if form.checked("preserveOverageAtReset") else None,
        measure_usage_from=measure,  # type: ignore[arg-type]
        config=form.optional("config"),
    )


@router.get("/customers/{customer_id}/entitlements/{entitlement_id}/delete")
def delete_page(
    request: Request, session: WriterPage, customer_id: CustomerId, entitlement_id: EntitlementId
) -> Response:
    customer = _customer(request, customer_id)
    view = entitlements_service.get_entitlement(
        context_of(request), CustomerOwner(customer.id), entitlement_id
    )
    return render(request, "entitlement_delete.html", session=session, customer=customer, view=view)


@router.post("/customers/{customer_id}/entitlements/{entitlement_id}/delete")
def delete_entitlement(
    request: Request, submission: Writer, customer_id: CustomerId, entitlement_id: EntitlementId
) -> Response:
    customer = _customer(request, customer_id)
    owner = CustomerOwner(customer.id)
    view = entitlements_service.get_entitlement(context_of(request), owner, entitlement_id)
    entitlements_service.delete_entitlement(context_of(request), owner, view.entitlement.id)
    return redirect(
        request,
        f"/customers/{customer.id}",
        flash=f"The entitlement to {view.entitlement.feature_key} was deleted.",
    )


@router.get("/customers/{customer_id}/entitlements/{entitlement_id}/reset")
def reset_page(
    request: Request, session: WriterPage, customer_id: CustomerId, entitlement_id: EntitlementId
) -> Response:
    customer = _customer(request, customer_id)
    view = entitlements_service.get_entitlement(
        context_of(request), CustomerOwner(customer.id), entitlement_id
    )
    values = {"preserveOverage": "on" if view.entitlement.preserve_overage_at_reset else ""}
    return render(
        request,
        "entitlement_reset.html",
        session=session,
        customer=customer,
        view=view,
        values=values,
    )


@router.post("/customers/{customer_id}/entitlements/{entitlement_id}/reset")
def reset_entitlement(
    request: Request, submission: Writer, customer_id: CustomerId, entitlement_id: EntitlementId
) -> Response:
    customer = _customer(request, customer_id)
    owner = CustomerOwner(customer.id)
    view = entitlements_service.get_entitlement(context_of(request), owner, entitlement_id)
    form, errors = submission.form, submission.errors
    if not errors:
        try:
            entitlement_resets.reset_entitlement(
                context_of(request),
                owner,
                view.entitlement.id,
                retain_anchor=form.checked("retainAnchor"),
                preserve_overage=form.checked("preserveOverage"),
            )
        except AllotmentError as error:
            errors.add_error(error, inputs={"effectiveAt": "", "entitlementIdOrFeatureKey": ""})
        else:
            return redirect(
                request,
                f"/customers/{customer.id}",
                flash=f"Usage of {view.entitlement.feature_key} was reset.",
            )
    return render(
        request,
        "entitlement_reset.html",
        session=submission.session,
        customer=customer,
        view=view,
        errors=errors,
        values=form.values,
        status_code=400,
    )
