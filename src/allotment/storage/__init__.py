"""Persistence: the only package that speaks SQL. Services reach it through `UnitOfWork`."""

from allotment.storage.database import Database, DatabaseOptions
from allotment.storage.unit_of_work import UnitOfWork

__all__ = ["Database", "DatabaseOptions", "UnitOfWork"]
