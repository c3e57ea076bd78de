"""Identifiers: ULIDs, as OpenMeter's are (26 characters, Crockford base32, time-ordered)."""

from __future__ import annotations

import re

from ulid import ULID

_ULID_PATTERN = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$")


def new_id() -> str:
    return str(ULID())


def is_ulid(value: str) -> bool:
    """True when `value` is shaped like a ULID; `…IdOrKey` path parameters try the id first."""
    return bool(_ULID_PATTERN.match(value))
