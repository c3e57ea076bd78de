"""Readiness: does the database answer, take writes, and have the latest schema?"""

from __future__ import annotations

from allotment.services.context import ServiceContext
from allotment.storage.migrations import current_revision_of, head_revision


def readiness_problem(context: ServiceContext) -> str | None:
    """None when ready, else a short reason. Blocking: the caller bounds the wait."""
    problem = context.database.readiness_problem()
    if problem is not None:
        return problem
    try:
        current = current_revision_of(context.database)
    except Exception as error:  # any driver error means "not reachable"
        return f"database unreachable: {type(error).__name__}"
    head = head_revision()
    if current != head:
        return f"database schema at {current}, expected {head}: run 'allotment migrate'"
    return None
