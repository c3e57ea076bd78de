"""Meters: the list, a meter's usage over time (range, window, time zone, split by a group-by
key) with its top subjects, and creating one."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from allotment.dashboard.auth import CurrentSession, Writer, WriterPage
from allotment.dashboard.charts import Series, time_chart
from allotment.dashboard.forms import FormErrors, FormInput, parse_pairs, parse_time
from allotment.dashboard.sessions import Session
from allotment.dashboard.web import context_of, redirect, render
from allotment.domain.meters import (
    SUBJECT_GROUP,
    Aggregation,
    Meter,
    MeterDefinition,
    MeterQuery,
    WindowSize,
    resolve_time_zone,
    window_end,
    window_start,
)
from allotment.domain.text import is_storable_text
from allotment.errors import AllotmentError, InvalidInput
from allotment.services import meters as meters_service
from allotment.services.context import ServiceContext

router = APIRouter()

RANGES: dict[str, tuple[str, timedelta, WindowSize]] = {
    "24h": ("Last 24 hours", timedelta(hours=24), WindowSize.HOUR),
    "7d": ("Last 7 days", timedelta(days=7), WindowSize.DAY),
    "30d": ("Last 30 days", timedelta(days=30), WindowSize.DAY),
    "90d": ("Last 90 days", timedelta(days=90), WindowSize.DAY),
}
WINDOW_LENGTH = {
    WindowSize.MINUTE: timedelta(minutes=1),
    WindowSize.HOUR: timedelta(hours=1),
    WindowSize.DAY: timedelta(days=1),
    WindowSize.MONTH: timedelta(days=28),
}
WINDOWS_MAX = 500
SERIES_MAX = 8
TOP_SUBJECTS = 10
COMMON_ZONES = (
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Paris",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
)
# Which input holds each field of a meter query.
QUERY_INPUTS = {"windowTimeZone": "tz", "groupBy": "split", "windowSize": "window"}
MeterSlug = Annotated[str, Path(min_length=1, max_length=256)]


@router.get("/meters")
def meters_page(request: Request, session: CurrentSession) -> Response:
    meters = meters_service.list_meters(context_of(request))
    return render(request, "meters.html", session=session, meters=meters)


@router.get("/meters/new")
def new_meter_page(request: Request, session: WriterPage) -> Response:
    return _meter_form(request, session, FormErrors(), {"aggregation": "SUM"})


@router.post("/meters/new")
def create_meter(request: Request, submission: Writer) -> Response:
    form, errors = submission.form, submission.errors
    definition = _definition(form, errors)
    if definition is not None and not errors:
        try:
            meter = meters_service.create_meter(context_of(request), definition)
        except AllotmentError as error:
            errors.add_error(error, inputs={"groupBy": "groupBy"})
        else:
            return redirect(request, f"/meters/{meter.slug}", flash=f"Meter {meter.slug} created.")
    return _meter_form(request, submission.session, errors, form.values, status_code=400)


def _meter_form(
    request: Request,
    session: Session,
    errors: FormErrors,
    values: dict[str, str],
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "meter_new.html",
        session=session,
        errors=errors,
        values=values,
        status_code=status_code,
        aggregations=[(a.value, a.value) for a in Aggregation],
    )


def _definition(form: FormInput, errors: FormErrors) -> MeterDefinition | None:
    try:
        aggregation = Aggregation(form.text("aggregation"))
    except ValueError:
        errors.add("aggregation", "choose one of " + ", ".join(a.value for a in Aggregation))
        return None
    return MeterDefinition(
        slug=form.text("slug"),
        aggregation=aggregation,
        event_type=form.text("eventType"),
        name=form.optional("name"),
        description=form.optional("description"),
        event_from=parse_time(form.optional("eventFrom"), "eventFrom", errors),
        value_property=form.optional("valueProperty"),
        group_by=parse_pairs(form.optional("groupBy"), "groupBy", errors),
    )


@dataclass(frozen=True)
class UsageView:
    windows: list[datetime]
    series: list[Series]
    hidden_series: int
    chart: object
    top_subjects: list[tuple[str, Decimal]]


@router.get("/meters/{slug}")
def meter_page(
    request: Request,
    session: CurrentSession,
    slug: MeterSlug,
    range_: Annotated[str, Query(alias="range", max_length=16)] = "7d",
    from_text: Annotated[str | None, Query(alias="from", max_length=64)] = None,
    to_text: Annotated[str | None, Query(alias="to", max_length=64)] = None,
    window: Annotated[str | None, Query(max_length=16)] = None,
    tz: Annotated[str, Query(max_length=64)] = "UTC",
    split: Annotated[str, Query(max_length=256)] = "",
) -> Response:
    context = context_of(request)
    if not is_storable_text(slug):
        raise InvalidInput("not a meter slug", field="slug")
    meter = meters_service.get_meter(context, slug)
    errors = FormErrors()
    values = {
        "range": range_ if range_ in RANGES or range_ == "custom" else "7d",
        "from": from_text or "",
        "to": to_text or "",
        "window": window or "",
        "tz": tz,
        "split": split,
    }
    for name, value in values.items():
        if not is_storable_text(value):
            errors.add(name, "contains characters that cannot be used")
            values[name] = ""
    query = None if errors else _usage_query(meter, values, context.clock(), errors)
    usage = None
    if query is not None:
        try:
            usage = _usage(context, meter, query, values["split"])
        except InvalidInput as error:
            errors.add_error(error, inputs=QUERY_INPUTS)
    return render(
        request,
        "meter.html",
        session=session,
        meter=meter,
        errors=errors,
        values=values,
        usage=usage,
        range_options=[(key, label) for key, (label, _span, _window) in RANGES.items()]
        + [("custom", "Custom range")],
        window_options=[("", "Fits the range")]
        + [(w.value, w.value.capitalize()) for w in WindowSize],
        split_options=[("", "Nothing")] + [(key, key) for key in meter.group_by],
        zones=COMMON_ZONES,
        status_code=400 if errors else 200,
    )


def _usage_query(
    meter: Meter, values: dict[str, str], now: datetime, errors: FormErrors
) -> MeterQuery | None:
    preset = RANGES.get(values["range"])
    window_text = values["window"]
    if preset is not None:
        _label, span, default_window = preset
        to_time: datetime | None = now
        from_time: datetime | None = now - span
        values["from"], values["to"] = "", ""
    else:
        default_window = WindowSize.DAY
        from_time = parse_time(values["from"] or None, "from", errors)
        to_time = parse_time(values["to"] or None, "to", errors) or now
        if from_time is None and "from" not in errors.by_field:
            errors.add("from", "give the start of the range")
    try:
        size = WindowSize(window_text) if window_text else default_window
        if not window_text and preset is None and from_time is not None and to_time is not None:
            size = _fitting_window(to_time - from_time)
    except ValueError:
        errors.add("window", "choose MINUTE, HOUR, DAY or MONTH")
        return None
    try:
        resolve_time_zone(values["tz"])
    except ValueError as error:
        errors.add("tz", str(error))
    if values["split"] and values["split"] not in meter.group_by:
        errors.add("split", f"{values['split']!r} is not a group-by key of this meter")
    if errors or from_time is None or to_time is None:
        return None
    if from_time < to_time and (to_time - from_time) / WINDOW_LENGTH[size] > WINDOWS_MAX:
        errors.add(
            "window", f"the range holds more than {WINDOWS_MAX} windows; choose a larger window"
        )
        return None
    return MeterQuery(
        from_time=from_time,
        to_time=to_time,
        window_size=size,
        time_zone=values["tz"],
        group_by=(values["split"],) if values["split"] else (),
    )


def _fitting_window(span: timedelta) -> WindowSize:
    """The finest window that draws a custom range in at most a couple of hundred points."""
    for size in (WindowSize.MINUTE, WindowSize.HOUR, WindowSize.DAY):
        if span / WINDOW_LENGTH[size] <= 200:
            return size
    return WindowSize.MONTH


def _usage(context: ServiceContext, meter: Meter, query: MeterQuery, split: str) -> UsageView:
    result = meters_service.query_meter(context, meter.slug, query)
    assert query.window_size is not None and query.from_time and query.to_time
    zone = query.zone
    windows: list[datetime] = []
    start = window_start(query.from_time, query.window_size, zone)
    while start < query.to_time and len(windows) <= WINDOWS_MAX:
        windows.append(start)
        start = window_end(start, query.window_size, zone)
    by_group: dict[str, dict[datetime, Decimal]] = defaultdict(dict)
    for row in result.rows:
        group = (row.group_by.get(split) or "(none)") if split else meter.slug
        by_group[group][row.window_start] = row.value
    ranked = sorted(by_group.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    kind: Literal["line", "bar"] = "line" if split else "bar"
    series = [
        Series(name, [points.get(w, Decimal(0)) for w in windows], kind=kind)
        for name, points in ranked[:SERIES_MAX]
    ]
    if not series:
        series = [Series(meter.slug, [Decimal(0)] * len(windows), kind="bar")]
    subjects = meters_service.query_meter(
        context,
        meter.slug,
        MeterQuery(
            from_time=query.from_time,
            to_time=query.to_time,
            time_zone=query.time_zone,
            group_by=(SUBJECT_GROUP,),
        ),
    )
    top = sorted(
        ((row.subject or "", row.value) for row in subjects.rows), key=lambda s: (-s[1], s[0])
    )
    chart = time_chart(
        windows, series, label=f"Usage of {meter.slug} per {query.window_size.value.lower()}"
    )
    return UsageView(windows, series, max(0, len(ranked) - SERIES_MAX), chart, top[:TOP_SUBJECTS])
