"""A turn has one holder at a time across connections and processes, is refused at once (never
waited for), and is free again once its holder lets go, also by dying."""

from __future__ import annotations

import multiprocessing
import time

from allotment.storage import Database


def test_one_holder_at_a_time_refused_at_once_and_free_again(database: Database) -> None:
    with database.turn("t") as first:
        assert first
        with database.turn("t") as second:
            assert not second
        with database.turn("other") as unrelated:
            assert unrelated
    with database.turn("t") as again:
        assert again


def _hold_and_die(url: str, held: object, release: object) -> None:
    import os

    database = Database(url)
    with database.turn("t") as mine:
        assert mine
        held.set()  # type: ignore[attr-defined]
        release.wait(10)  # type: ignore[attr-defined]
        os._exit(0)  # no clean-up: the lock goes with the process


def test_a_holder_in_another_process_that_dies_lets_go(database: Database) -> None:
    fork = multiprocessing.get_context("fork")
    held, release = fork.Event(), fork.Event()
    database.engine.dispose()  # no pooled connection crosses the fork
    child = fork.Process(target=_hold_and_die, args=(database.url, held, release))
    child.start()
    try:
        assert held.wait(20)
        with database.turn("t") as mine:
            assert not mine
    finally:
        release.set()
        child.join(20)
    # PostgreSQL ends the dead client's session (and its lock) once it sees the socket closed.
    deadline = time.monotonic() + 10
    free = False
    while not free and time.monotonic() < deadline:
        with database.turn("t") as free:
            pass
        time.sleep(0.05)
    assert free
