"""Fixtures shared by every suite: databases (SQLite and PostgreSQL), a settable clock, the app.

Storage, service and API tests take the `database` fixture, which is parametrised over both
databases. PostgreSQL tests are skipped when no server answers, unless
ALLOTMENT_REQUIRE_POSTGRES=1 (set by CI), in which case they fail loudly.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from allotment.services.context import ServiceContext
from allotment.storage import Database
from allotment.storage.migrations import upgrade
from allotment.storage.tables import metadata

# pytest-xdist sets COLUMNS=80 in its workers, and rich fixes a console's width from COLUMNS when
# the console is made (the CLI's, on import): the CLI tests pass their own width per invocation.
os.environ.pop("COLUMNS", None)

POSTGRES_ADMIN_URL = os.environ.get(
    "ALLOTMENT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("ALLOTMENT_REQUIRE_POSTGRES") == "1"


class SettableClock:
    """A clock tests move by hand; services read it once per use case."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2024, 1, 1, tzinfo=UTC)
        self.frozen = now is not None

    def __call__(self) -> datetime:
        return self.now if self.frozen else datetime.now(UTC)

    def set(self, now: datetime) -> None:
        self.now = now.astimezone(UTC)
        self.frozen = True

    def advance(self, delta: timedelta) -> None:
        self.set(self() + delta)

    def release(self) -> None:
        self.frozen = False


def _postgres_available() -> str | None:
    """None when reachable, else the reason."""
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as error:
        return f"{type(error).__name__}: {error}"


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("sqlite") / "allotment-test.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    problem = _postgres_available()
    if problem is not None:
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL is required (ALLOTMENT_REQUIRE_POSTGRES=1) but: {problem}")
        pytest.skip(f"PostgreSQL not reachable: {problem}")
    name = f"allotment_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _database_urls() -> list[object]:
    return ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=_database_urls())
def database_url(request: pytest.FixtureRequest) -> str:
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


_databases: dict[str, Database] = {}


def _clean(database: Database) -> None:
    with database.engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            if table.name == "catalog_versions":
                # The change board's name stays: a new one per test would leave a file behind.
                connection.execute(table.delete().where(table.c.name != "change_board"))
            else:
                connection.execute(table.delete())
        # Rows the migrations seed, as a new database has them.
        connection.execute(
            text(
                "INSERT INTO catalog_versions (name, version) VALUES ('meters', 1), ('catalog', 1)"
            )
        )


@pytest.fixture
def database(database_url: str) -> Database:
    """A migrated, empty database of each kind (tables cleared before every test)."""
    database = _databases.get(database_url)
    if database is None:
        database = _databases[database_url] = Database(database_url, pool_size=4)
    _clean(database)
    return database


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(datetime(2024, 1, 15, 12, 0, tzinfo=UTC))


@pytest.fixture
def context(database: Database, clock: SettableClock) -> ServiceContext:
    return ServiceContext(database=database, clock=clock)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for database in _databases.values():
        database.dispose()
