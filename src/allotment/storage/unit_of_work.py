"""One transaction, with the repositories hanging off it.

Services open a unit of work, call repositories, and `commit()` once; leaving the block without
committing rolls everything back, so a failure half-way through a batch stores nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, Self

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import TimeoutError as PoolTimeout

from allotment.storage.change_board import ChangeBoard, customer_key, subject_key
from allotment.storage.repositories.base import CHANGES_KEY, DefinitionChanges
from allotment.storage.sqlite_writers import WriterQueue

if TYPE_CHECKING:
    from allotment.errors import Unavailable
    from allotment.storage.deadlines import Deadlines
    from allotment.storage.repositories.api_keys import ApiKeyRepository
    from allotment.storage.repositories.checkpoints import CheckpointRepository
    from allotment.storage.repositories.corrections import CorrectionRepository
    from allotment.storage.repositories.counts import CountRepository
    from allotment.storage.repositories.customers import CustomerRepository
    from allotment.storage.repositories.entitlements import EntitlementRepository
    from allotment.storage.repositories.events import EventRepository
    from allotment.storage.repositories.features import FeatureRepository
    from allotment.storage.repositories.grants import GrantRepository
    from allotment.storage.repositories.idempotency import IdempotencyRepository
    from allotment.storage.repositories.meters import MeterRepository
    from allotment.storage.repositories.notifications import NotificationRepository
    from allotment.storage.repositories.outbox import OutboxRepository
    from allotment.storage.repositories.plans import PlanRepository
    from allotment.storage.repositories.portal_tokens import PortalTokenRepository
    from allotment.storage.repositories.subjects import SubjectRepository
    from allotment.storage.repositories.subscriptions import SubscriptionRepository
    from allotment.storage.repositories.usage import UsageRepository
    from allotment.storage.repositories.versions import VersionRepository
    from allotment.storage.rollups import RollupRepository
    from allotment.storage.usage_store import UsageStore


class UnitOfWork:
    def __init__(
        self,
        engine: Engine,
        *,
        write: bool,
        single_statement: bool = False,
        deadlines: Deadlines | None = None,
        transaction_seconds: float = 0.0,
        unavailable: Callable[[BaseException], Unavailable | None] | None = None,
        writers: WriterQueue | None = None,
        board: Callable[[Connection], ChangeBoard | None] | None = None,
    ) -> None:
        self._engine = engine
        self._board = board
        self._writers = writers if write and not single_statement else None
        self._turn: AbstractContextManager[None] | None = None
        self._write = write
        self._single_statement = single_statement
        self._connection: Connection | None = None
        self._deadlines = deadlines
        self._transaction_seconds = transaction_seconds
        self._unavailable = unavailable
        self._watch: int | None = None

    def __enter__(self) -> Self:
        if self._writers is not None:
            # SQLite: wait for this writer's turn first (storage/sqlite_writers.py).
            turn = self._writers.turn()
            try:
                turn.__enter__()
            except Exception as error:
                translated = self._unavailable(error) if self._unavailable else None
                if translated is None:
                    raise
                raise translated from None
            self._turn = turn
        try:
            return self._open()
        except BaseException:
            self._leave_turn()
            raise

    def _leave_turn(self) -> None:
        turn, self._turn = self._turn, None
        if turn is not None:
            turn.__exit__(None, None, None)

    def _open(self) -> Self:
        try:
            connection = self._engine.connect()
        except PoolTimeout as error:
            # Raised by the pool, not by a statement, so no handle_error hook saw it.
            translated = self._unavailable(error) if self._unavailable else None
            if translated is None:
                raise
            raise translated from None
        try:
            if self._deadlines is not None:
                # Not a statement timeout (the server has its own): the backstop for a server
                # that stopped answering, see storage/deadlines.py.
                self._watch = self._deadlines.watch(
                    connection.connection.dbapi_connection, self._transaction_seconds
                )
            if self._single_statement:
                # One statement is atomic and sees one snapshot by itself: no BEGIN and no
                # ROLLBACK, so a read that needs one statement costs one round trip. (SQLite's
                # driver already runs without implicit transactions; only our BEGIN is skipped.)
                if self._engine.dialect.name == "sqlite":
                    connection = connection.execution_options(sqlite_begin=None)
                else:
                    connection = connection.execution_options(isolation_level="AUTOCOMMIT")
                self._connection = connection
                return self
            if self._write and self._engine.dialect.name == "sqlite":
                connection = connection.execution_options(sqlite_begin="IMMEDIATE")
            if not self._write and self._engine.dialect.name == "postgresql":
                # A read sees one snapshot across its statements, as a SQLite WAL read does: a
                # balance read never mixes grants from before a concurrent reset with resets
                # after.
                connection = connection.execution_options(isolation_level="REPEATABLE READ")
            self._connection = connection
            connection.begin()
            connection.info[CHANGES_KEY] = DefinitionChanges()
        except BaseException:
            self._release(connection)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection = self.connection
        try:
            connection.info.pop(CHANGES_KEY, None)
            if connection.in_transaction():
                connection.rollback()
        except Exception:
            # A connection that just failed may fail its rollback too; the first error is the
            # one to report.
            if exc is None:
                raise
        finally:
            self._release(connection)
        # Statements SQLAlchemy runs are translated by the engine's handle_error hook; a driver
        # call made directly on the connection (COPY) is not, so its error is translated here.
        if isinstance(exc, Exception) and self._unavailable is not None:
            translated = self._unavailable(exc)
            if translated is not None and translated is not exc:
                raise translated from None

    def _release(self, connection: Connection) -> None:
        if self._watch is not None and self._deadlines is not None:
            self._deadlines.unwatch(self._watch)
            self._watch = None
        try:
            connection.close()
            self._connection = None
        finally:
            self._leave_turn()

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            raise RuntimeError("unit of work used outside its `with` block")
        return self._connection

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def commit(self) -> None:
        changes: DefinitionChanges | None = self.connection.info.get(CHANGES_KEY)
        board = self._board(self.connection) if self._board is not None and changes else None
        marked: list[str] = []
        if changes is not None:
            customer_ids = self.versions.publish(changes)
            marked = [customer_key(c) for c in customer_ids]
            marked += [subject_key(s) for s in changes.usage_subjects]
            self.connection.info[CHANGES_KEY] = DefinitionChanges()
        everything = changes is not None and changes.catalog
        # Marked before and after (storage/change_board.py says why both).
        if board is not None:
            board.mark(marked, everything=everything)
        self.connection.commit()
        if board is not None:
            board.mark(marked, everything=everything)

    # Repositories share this unit's connection, hence its transaction.

    @cached_property
    def api_keys(self) -> ApiKeyRepository:
        from allotment.storage.repositories.api_keys import ApiKeyRepository

        return ApiKeyRepository(self.connection)

    @cached_property
    def counts(self) -> CountRepository:
        from allotment.storage.repositories.counts import CountRepository

        return CountRepository(self.connection)

    @cached_property
    def events(self) -> EventRepository:
        from allotment.storage.repositories.events import EventRepository

        return EventRepository(self.connection)

    @cached_property
    def meters(self) -> MeterRepository:
        from allotment.storage.repositories.meters import MeterRepository

        return MeterRepository(self.connection)

    @cached_property
    def usage(self) -> UsageRepository:
        from allotment.storage.repositories.usage import UsageRepository

        return UsageRepository(self.connection)

    @cached_property
    def versions(self) -> VersionRepository:
        from allotment.storage.repositories.versions import VersionRepository

        return VersionRepository(self.connection)

    @cached_property
    def checkpoints(self) -> CheckpointRepository:
        from allotment.storage.repositories.checkpoints import CheckpointRepository

        return CheckpointRepository(self.connection)

    @cached_property
    def usage_store(self) -> UsageStore:
        from allotment.storage.usage_store import UsageStore

        return UsageStore(self.connection)

    @cached_property
    def corrections(self) -> CorrectionRepository:
        from allotment.storage.repositories.corrections import CorrectionRepository

        return CorrectionRepository(self.connection)

    @cached_property
    def rollups(self) -> RollupRepository:
        return self.usage_store.rollups

    @cached_property
    def subjects(self) -> SubjectRepository:
        from allotment.storage.repositories.subjects import SubjectRepository

        return SubjectRepository(self.connection)

    @cached_property
    def customers(self) -> CustomerRepository:
        from allotment.storage.repositories.customers import CustomerRepository

        return CustomerRepository(self.connection)

    @cached_property
    def features(self) -> FeatureRepository:
        from allotment.storage.repositories.features import FeatureRepository

        return FeatureRepository(self.connection)

    @cached_property
    def entitlements(self) -> EntitlementRepository:
        from allotment.storage.repositories.entitlements import EntitlementRepository

        return EntitlementRepository(self.connection)

    @cached_property
    def grants(self) -> GrantRepository:
        from allotment.storage.repositories.grants import GrantRepository

        return GrantRepository(self.connection)

    @cached_property
    def portal_tokens(self) -> PortalTokenRepository:
        from allotment.storage.repositories.portal_tokens import PortalTokenRepository

        return PortalTokenRepository(self.connection)

    @cached_property
    def idempotency(self) -> IdempotencyRepository:
        from allotment.storage.repositories.idempotency import IdempotencyRepository

        return IdempotencyRepository(self.connection)

    @cached_property
    def plans(self) -> PlanRepository:
        from allotment.storage.repositories.plans import PlanRepository

        return PlanRepository(self.connection)

    @cached_property
    def subscriptions(self) -> SubscriptionRepository:
        from allotment.storage.repositories.subscriptions import SubscriptionRepository

        return SubscriptionRepository(self.connection)

    @cached_property
    def notifications(self) -> NotificationRepository:
        from allotment.storage.repositories.notifications import NotificationRepository

        return NotificationRepository(self.connection)

    @cached_property
    def outbox(self) -> OutboxRepository:
        from allotment.storage.repositories.outbox import OutboxRepository

        return OutboxRepository(self.connection)
