"""Per-invocation CLI state: settings from the global options, and the service context."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from allotment.services.context import ServiceContext
from allotment.settings import Settings
from allotment.storage import Database


@dataclass
class CliState:
    settings: Settings = field(default_factory=Settings)

    @cached_property
    def context(self) -> ServiceContext:
        return ServiceContext(
            database=Database(self.settings.database_url, options=self.settings.database_options())
        )


STATE = CliState()
