"""What text the databases can store, checked before it reaches them.

PostgreSQL refuses NUL characters in text and JSONB, and neither database can encode a lone UTF-16
surrogate (JSON allows `"\\ud800"`). Left unchecked, either would surface as a driver error, a 500
for input a client chose; checked here, it is a 400 naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping


def is_storable_text(value: str) -> bool:
    """True when both databases can store `value` unchanged."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_storable_document(value: object) -> bool:
    """`is_storable_text` for every key and string anywhere inside a JSON document."""
    if isinstance(value, str):
        return is_storable_text(value)
    if isinstance(value, Mapping):
        return all(
            is_storable_text(str(key)) and is_storable_document(item) for key, item in value.items()
        )
    if isinstance(value, list | tuple):
        return all(is_storable_document(item) for item in value)
    return True


UNSTORABLE_TEXT = "must not contain NUL characters or unpaired surrogates"
