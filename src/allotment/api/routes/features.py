"""Routes for features (OpenMeter v1). There is no update: features are immutable."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from allotment.api.deps import Context
from allotment.api.routing import MANAGE, READ, ApiRoute
from allotment.api.schemas.common import Page
from allotment.api.schemas.features import FeatureCreateBody, FeatureResponse
from allotment.api.schemas.query_params import LegacyList
from allotment.domain.features import FeatureFilter, FeatureOrderBy
from allotment.domain.listing import SortOrder
from allotment.services import features

router = APIRouter(route_class=ApiRoute, tags=["features"])

FeatureIdOrKey = Annotated[
    str, Path(alias="featureId", description="A feature id, or the key of a live feature")
]


@router.post(
    "/api/v1/features", dependencies=[MANAGE], status_code=201, response_model_exclude_none=True
)
def create_feature(context: Context, body: FeatureCreateBody) -> FeatureResponse:
    """A feature with `meterSlug` is metered; its meter must aggregate SUM, COUNT, UNIQUE_COUNT
    or LATEST, and its filters must name the meter's group-by keys."""
    return FeatureResponse.of(features.create_feature(context, body.to_new_feature()))


@router.get("/api/v1/features", dependencies=[READ], response_model_exclude_none=True)
def list_features(
    context: Context,
    shape: LegacyList,
    meter_slug: Annotated[list[str] | None, Query(alias="meterSlug")] = None,
    include_archived: Annotated[bool, Query(alias="includeArchived")] = False,
    order: SortOrder = SortOrder.ASC,
    order_by: Annotated[FeatureOrderBy, Query(alias="orderBy")] = FeatureOrderBy.KEY,
) -> list[FeatureResponse] | Page[FeatureResponse]:
    """A bare array (`limit`/`offset`) unless `page` or `pageSize` is sent, then a page object."""
    criteria = FeatureFilter(
        meter_slugs=tuple(meter_slug or ()),
        include_archived=include_archived,
        order_by=order_by,
        order=order,
    )
    result = features.list_features(context, criteria, shape.window)
    return shape.wrap([FeatureResponse.of(feature) for feature in result.items], result.total_count)


@router.get("/api/v1/features/{featureId}", dependencies=[READ], response_model_exclude_none=True)
def get_feature(context: Context, feature_id_or_key: FeatureIdOrKey) -> FeatureResponse:
    """An archived feature is 404 here, by id and by key (list with includeArchived shows it)."""
    return FeatureResponse.of(features.get_feature(context, feature_id_or_key))


@router.delete("/api/v1/features/{featureId}", dependencies=[MANAGE], status_code=204)
def archive_feature(context: Context, feature_id_or_key: FeatureIdOrKey) -> Response:
    """Archives: the key becomes free, existing entitlements keep working, new ones are refused."""
    features.archive_feature(context, feature_id_or_key)
    return Response(status_code=204)
