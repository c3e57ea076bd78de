"""Features: the list, creating one (with its meter and group-by filters), archiving."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from allotment.dashboard.auth import CurrentSession, Writer, WriterPage
from allotment.dashboard.forms import FormErrors, FormInput, parse_pairs
from allotment.dashboard.sessions import Session
from allotment.dashboard.web import context_of, redirect, render
from allotment.domain.features import FeatureFilter, NewFeature, group_by_filters_from_wire
from allotment.domain.listing import Window
from allotment.errors import AllotmentError
from allotment.services import features as features_service
from allotment.services import meters as meters_service

router = APIRouter()

PAGE_SIZE = 50
FeatureId = Annotated[str, Path(min_length=1, max_length=64)]
FILTER_INPUTS = {"meterGroupByFilters": "filters", "advancedMeterGroupByFilters": "filters"}


@router.get("/features")
def features_page(
    request: Request,
    session: CurrentSession,
    archived: Annotated[bool, Query()] = False,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    result = features_service.list_features(
        context_of(request),
        FeatureFilter(include_archived=archived),
        Window.of_page(page, PAGE_SIZE),
    )
    return render(
        request,
        "features.html",
        session=session,
        features=result.items,
        total=result.total_count,
        page=page,
        pages=max(1, -(-result.total_count // PAGE_SIZE)),
        archived=archived,
    )


@router.get("/features/new")
def new_feature_page(request: Request, session: WriterPage) -> Response:
    return _feature_form(request, session, FormErrors(), {})


@router.post("/features/new")
def create_feature(request: Request, submission: Writer) -> Response:
    form, errors = submission.form, submission.errors
    new = _new_feature(form, errors)
    if new is not None and not errors:
        try:
            feature = features_service.create_feature(context_of(request), new)
        except AllotmentError as error:
            errors.add_error(error, inputs=FILTER_INPUTS)
        else:
            return redirect(request, "/features", flash=f"Feature {feature.key} created.")
    return _feature_form(request, submission.session, errors, form.values, status_code=400)


def _feature_form(
    request: Request,
    session: Session,
    errors: FormErrors,
    values: dict[str, str],
    status_code: int = 200,
) -> Response:
    meters = meters_service.list_meters(context_of(request))
    return render(
        request,
        "feature_new.html",
        session=session,
        errors=errors,
        values=values,
        meter_options=[("", "None")]
        + [(m.slug, f"{m.name} ({m.aggregation.value})") for m in meters],
        status_code=status_code,
    )


def _new_feature(form: FormInput, errors: FormErrors) -> NewFeature | None:
    """Filters are lines of `key=value` (equals) or `key={"$in": [...]}` (any FilterString)."""
    documents: dict[str, object] = {}
    for key, text in parse_pairs(form.optional("filters"), "filters", errors).items():
        if text.startswith("{"):
            try:
                documents[key] = json.loads(text)
            except ValueError:
                errors.add("filters", f"the filter of {key!r} is not valid JSON")
        else:
            documents[key] = {"$eq": text}
    try:
        filters = group_by_filters_from_wire(None, documents)
    except AllotmentError as error:
        errors.add_error(error, inputs=FILTER_INPUTS)
        return None
    return NewFeature(
        key=form.text("key"),
        # The API allows an empty name (as OpenMeter does); a person leaving it blank means
        # "call it by its key".
        name=form.text("name") or form.text("key"),
        meter_slug=form.optional("meterSlug"),
        group_by_filters=filters,
    )


@router.get("/features/{feature_id}/archive")
def archive_page(request: Request, session: WriterPage, feature_id: FeatureId) -> Response:
    feature = features_service.get_feature(context_of(request), feature_id)
    return render(request, "feature_archive.html", session=session, feature=feature)


@router.post("/features/{feature_id}/archive")
def archive_feature(request: Request, submission: Writer, feature_id: FeatureId) -> Response:
    feature = features_service.archive_feature(context_of(request), feature_id)
    return redirect(request, "/features", flash=f"Feature {feature.key} archived.")
