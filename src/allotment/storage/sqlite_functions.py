"""SQL functions SQLite lacks, registered on every new SQLite connection.

PostgreSQL has time zones, exact NUMERIC sums and regular expressions built in; SQLite gets
small deterministic Python equivalents so the same queries run on both.
"""

from __future__ import annotations

import sqlite3


def register(connection: sqlite3.Connection) -> None:
    """Called by the engine's connect hook; add functions here as queries need them."""
