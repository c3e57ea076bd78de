"""The change board: which usage and definitions changed, shared by every process on this host.

A process may answer a check from a response it computed earlier only if nothing that response
depends on has been written since, by any process. Asking the database costs the round trip
the answer is meant to save, so writers also leave a mark here: a small file of 64-bit slots,
mapped into every process that opens the same database on this host. A committing unit of work
writes a fresh random number into the slot of every customer and subject it changed (and into
the global slot for catalog changes) once before its commit and once after, and the API answers
a write only after that. A reader copies the board before it reads the database and keeps the
copy's slots with its answer; the answer stays usable while those slots hold the same numbers.

- Random numbers, not counters: two writers bumping one slot at once cannot leave it at a value
  a reader saw before (an unlocked `+ 1` could), and a torn read only looks like a change.
- Slots are hashed: two keys sharing one only cost a needless recomputation.
- The mark before the commit covers a reader that copies the board between the commit and the
  mark after it; the mark after covers a reader whose snapshot predates the commit.
- Only writers on this host mark this board. Where another host writes to the same database,
  answers must not be reused: `ALLOTMENT_CHANGE_BOARD` (settings.py) is `auto` by default, which
  turns it on for SQLite and for a PostgreSQL reached on this host, and off for a remote one.
"""

from __future__ import annotations

import mmap
import os
import random
import tempfile
import threading
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import make_url

SLOTS: Final = 16_384
GLOBAL_SLOT: Final = 0
"""Changes that may touch any customer (features, meters, customers' keys and subjects)."""

INSTANCE_ROW: Final = "change_board"
"""The `catalog_versions` row naming this database's board: a random number made by migration
0010, so every process that opens the database on this host maps the same file."""

LOCAL_HOSTS: Final = frozenset({"", "localhost", "127.0.0.1", "::1"})

Snapshot = bytes
"""A copy of the whole board (128 KiB), taken before a read."""


def customer_key(customer_id: str) -> str:
    return "c:" + customer_id


def subject_key(subject: str) -> str:
    return "s:" + subject


def _slot(key: str) -> int:
    return 1 + zlib.crc32(key.encode()) % (SLOTS - 1)


class ChangeBoard:
    def __init__(self, path: Path) -> None:
        self.path = path
        size = SLOTS * 8
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(descriptor).st_size < size:
                os.ftruncate(descriptor, size)
            self._map = mmap.mmap(descriptor, size)
        finally:
            os.close(descriptor)
        self._slots = memoryview(self._map).cast("Q")
        self._random = random.Random(os.urandom(16))
        self._lock = threading.Lock()

    def mark(self, keys: Iterable[str], *, everything: bool = False) -> None:
        """Record that what `keys` name (and with `everything`, anything) changed."""
        slots = {_slot(key) for key in keys}
        if everything:
            slots.add(GLOBAL_SLOT)
        if not slots:
            return
        with self._lock:  # the generator is shared by the process's threads
            for slot in slots:
                self._slots[slot] = self._random.getrandbits(64)

    def snapshot(self) -> Snapshot:
        return self._map[:]

    def stamps(self, snapshot: Snapshot, keys: Sequence[str]) -> tuple[int, ...]:
        """The slots of `keys` (and the global one) as `snapshot` holds them."""
        view = memoryview(snapshot).cast("Q")
        return (view[GLOBAL_SLOT], *(view[_slot(key)] for key in keys))

    def unchanged(self, keys: Sequence[str], stamps: tuple[int, ...]) -> bool:
        """Whether nothing `keys` name has changed since `stamps` were taken."""
        slots = self._slots
        if slots[GLOBAL_SLOT] != stamps[0]:
            return False
        return all(slots[_slot(key)] == stamp for key, stamp in zip(keys, stamps[1:], strict=True))


def board_wanted(setting: str, engine: Engine) -> bool:
    """Whether `setting` (auto, on, off) turns the board on for this database."""
    if setting == "on":
        return True
    if setting == "off":
        return False
    if engine.dialect.name == "sqlite":
        return True
    host = make_url(engine.url).host or ""
    return host in LOCAL_HOSTS or host.startswith("/")


def open_board(connection: Connection, sqlite_path: str | None = None) -> ChangeBoard | None:
    """The board of the database `connection` reaches, or None when it has no name for one
    (a database not migrated to 0010 yet). A SQLite file's board lies beside it, as its WAL
    does; a PostgreSQL database's in the system's temporary directory."""
    row = connection.exec_driver_sql(
        f"SELECT version FROM catalog_versions WHERE name = '{INSTANCE_ROW}'"
    ).first()
    if row is None:
        return None
    if sqlite_path is not None:
        return ChangeBoard(Path(f"{sqlite_path}-changes"))
    return ChangeBoard(Path(tempfile.gettempdir()) / f"allotment-changes-{int(row[0]):016x}")
