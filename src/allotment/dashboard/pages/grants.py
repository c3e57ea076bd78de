"""Grants: a top-up from the customer page (amount, expiry, priority), and voiding one."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from allotment.dashboard.auth import Writer, WriterPage
from allotment.dashboard.formatting import number
from allotment.dashboard.forms import FormErrors, FormInput, parse_amount, parse_integer, parse_time
from allotment.dashboard.pages.customers import EXPIRY_CHOICES
from allotment.dashboard.web import context_of, redirect, render
from allotment.domain.grant_requests import ExpirationRequest, GrantDefaults, GrantRequest
from allotment.errors import AllotmentError, NotFound
from allotment.services import customers as customers_service
from allotment.services import entitlements as entitlements_service
from allotment.services import grants as grants_service
from allotment.services.entitlement_owners import CustomerOwner

router = APIRouter()

CustomerId = Annotated[str, Path(min_length=1, max_length=256)]
EntitlementId = Annotated[str, Path(min_length=1, max_length=64)]
GrantId = Annotated[str, Path(min_length=1, max_length=64)]
GRANT_INPUTS = {"expiration": "expiration", "recurrence": "recurrence.interval"}
_EXPIRY = re.compile(r"^(\d{1,4})\s+([A-Za-z]+)$")


@router.get("/customers/{customer_id}/entitlements/{entitlement_id}/grants/new")
def grant_page(
    request: Request, session: WriterPage, customer_id: CustomerId, entitlement_id: EntitlementId
) -> Response:
    customer = customers_service.get_customer(context_of(request), customer_id)
    view = entitlements_service.get_entitlement(
        context_of(request), CustomerOwner(customer.id), entitlement_id
    )
    return render(
        request,
        "grant_form.html",
        session=session,
        customer=customer,
        view=view,
        expiry_choices=EXPIRY_CHOICES,
        values={"expiration": "1 MONTH"},
    )


@router.post("/customers/{customer_id}/entitlements/{entitlement_id}/grants")
def create_grant(
    request: Request, submission: Writer, customer_id: CustomerId, entitlement_id: EntitlementId
) -> Response:
    context = context_of(request)
    customer = customers_service.get_customer(context, customer_id)
    owner = CustomerOwner(customer.id)
    view = entitlements_service.get_entitlement(context, owner, entitlement_id)
    form, errors = submission.form, submission.errors
    grant_request = _request(form, errors, context.clock())
    if grant_request is not None and not errors:
        try:
            grants_service.create_grant(
                context, owner, view.entitlement.id, grant_request, GrantDefaults.V2
            )
        except AllotmentError as error:
            errors.add_error(error, inputs=GRANT_INPUTS)
        else:
            return redirect(
                request,
                f"/customers/{customer.id}",
                flash=f"Granted {number(grant_request.amount)} of "
                f"{view.entitlement.feature_key} to {customer.name}",
            )
    return render(
        request,
        "grant_form.html",
        session=submission.session,
        customer=customer,
        view=view,
        expiry_choices=EXPIRY_CHOICES,
        errors=errors,
        values=form.values,
        status_code=400,
    )


def _request(form: FormInput, errors: FormErrors, now: object) -> GrantRequest | None:
    amount = parse_amount(form.optional("amount"), "amount", errors)
    if amount is None and "amount" not in errors.by_field:
        errors.add("amount", "how much to grant, e.g. 500,000")
    expiration = None
    expiry = form.optional("expiration")
    if expiry is not None:
        match = _EXPIRY.match(expiry)
        if match is None:
            errors.add("expiration", "choose when the grant expires")
        else:
            expiration = ExpirationRequest(
                duration=match.group(2).upper(), count=int(match.group(1))
            )
    effective_at = parse_time(form.optional("effectiveAt"), "effectiveAt", errors) or now
    priority = parse_integer(form.optional("priority"), "priority", errors)
    maximum = parse_amount(form.optional("maxRolloverAmount"), "maxRolloverAmount", errors)
    minimum = parse_amount(form.optional("minRolloverAmount"), "minRolloverAmount", errors)
    if amount is None:
        return None
    return GrantRequest(
        amount=amount,
        effective_at=effective_at,  # type: ignore[arg-type]
        priority=priority,
        expiration=expiration,
        max_rollover_amount=maximum,
        min_rollover_amount=minimum,
    )


def _grant_of(request: Request, owner: CustomerOwner, entitlement_id: str, grant_id: str):  # type: ignore[no-untyped-def]
    grants = grants_service.list_entitlement_grants(context_of(request), owner, entitlement_id)
    for view in grants.items:
        if view.grant.id == grant_id:
            return view
    raise NotFound(f"grant not found: {grant_id}", field="grantId")


@router.get("/customers/{customer_id}/entitlements/{entitlement_id}/grants/{grant_id}/void")
def void_page(
    request: Request,
    session: WriterPage,
    customer_id: CustomerId,
    entitlement_id: EntitlementId,
    grant_id: GrantId,
) -> Response:
    customer = customers_service.get_customer(context_of(request), customer_id)
    owner = CustomerOwner(customer.id)
    view = entitlements_service.get_entitlement(context_of(request), owner, entitlement_id)
    grant = _grant_of(request, owner, view.entitlement.id, grant_id)
    return render(
        request, "grant_void.html", session=session, customer=customer, view=view, grant=grant
    )


@router.post("/customers/{customer_id}/entitlements/{entitlement_id}/grants/{grant_id}/void")
def void_grant(
    request: Request,
    submission: Writer,
    customer_id: CustomerId,
    entitlement_id: EntitlementId,
    grant_id: GrantId,
) -> Response:
    customer = customers_service.get_customer(context_of(request), customer_id)
    owner = CustomerOwner(customer.id)
    view = entitlements_service.get_entitlement(context_of(request), owner, entitlement_id)
    grant = _grant_of(request, owner, view.entitlement.id, grant_id)
    try:
        grants_service.void_grant(context_of(request), grant.grant.id)
    except AllotmentError as error:
        errors = FormErrors()
        errors.add_error(error, inputs={"at": "", "grantId": ""})
        return render(
            request,
            "grant_void.html",
            session=submission.session,
            customer=customer,
            view=view,
            grant=grant,
            errors=errors,
            status_code=400,
        )
    return redirect(
        request,
        f"/customers/{customer.id}",
        flash=f"The grant of {number(grant.grant.amount)} was voided.",
    )
