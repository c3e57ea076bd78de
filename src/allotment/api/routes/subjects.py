"""Routes for subjects (OpenMeter v1, deprecated there in favour of customers, still used)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Response

from allotment.api.deps import Context
from allotment.api.routing import MANAGE, READ, ApiRoute
from allotment.api.schemas.subjects import SubjectResponse, SubjectUpsertBody
from allotment.services import subjects

router = APIRouter(route_class=ApiRoute, tags=["subjects"])

SubjectIdOrKey = Annotated[
    str, Path(alias="subjectIdOrKey", description="A subject id, or else its key")
]


@router.get("/api/v1/subjects", dependencies=[READ], response_model_exclude_none=True)
def list_subjects(context: Context) -> list[SubjectResponse]:
    """Live subjects, ordered by key."""
    return [SubjectResponse.of(subject) for subject in subjects.list_subjects(context)]


@router.post("/api/v1/subjects", dependencies=[MANAGE], response_model_exclude_none=True)
def upsert_subjects(
    context: Context, body: Annotated[list[SubjectUpsertBody], Body()]
) -> list[SubjectResponse]:
    """Create new keys, update the named fields of existing ones; answers in request order."""
    upserted = subjects.upsert_subjects(context, [entry.to_upsert() for entry in body])
    return [SubjectResponse.of(subject) for subject in upserted]


@router.get(
    "/api/v1/subjects/{subjectIdOrKey}", dependencies=[READ], response_model_exclude_none=True
)
def get_subject(context: Context, subject_id_or_key: SubjectIdOrKey) -> SubjectResponse:
    return SubjectResponse.of(subjects.get_subject(context, subject_id_or_key))


@router.delete("/api/v1/subjects/{subjectIdOrKey}", dependencies=[MANAGE], status_code=204)
def delete_subject(context: Context, subject_id_or_key: SubjectIdOrKey) -> Response:
    subjects.delete_subject(context, subject_id_or_key)
    return Response(status_code=204)
