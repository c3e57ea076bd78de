"""Shared plumbing for repositories."""

from __future__ import annotations

from sqlalchemy import Connection


class Repository:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    @property
    def dialect(self) -> str:
        return self.connection.dialect.name
