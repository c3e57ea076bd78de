"""One SQLite writer at a time, handed over at once.

SQLite lets one transaction write at a time; a writer that finds the lock taken sleeps in
SQLite's busy handler for 1, 2, 5, 10 ... 100 ms before it looks again, so writers of several
server processes (and threads) waste most of their time asleep while the lock is free. Write
units therefore queue here first: a thread lock inside the process, and an advisory file lock
(`<database>-writer`) across processes, polled every half millisecond. Whoever holds both is
the only one that asks SQLite for its write lock, and gets it without waiting.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

POLL_SECONDS: Final = 0.0005


class WriterQueue:
    def __init__(self, database_path: str, timeout_seconds: float) -> None:
        self._path = f"{database_path}-writer"
        self._timeout = timeout_seconds
        self._thread_lock = threading.Lock()
        self._fd: int | None = None

    def _file(self) -> int:
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        return self._fd

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Wait for this writer's turn; raises sqlite3.OperationalError('database is locked')
        after the timeout, as SQLite itself would."""
        deadline = time.monotonic() + self._timeout
        if not self._thread_lock.acquire(timeout=self._timeout):
            raise sqlite3.OperationalError("database is locked")
        try:
            fd = self._file()
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise sqlite3.OperationalError("database is locked") from None
                    time.sleep(POLL_SECONDS)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
