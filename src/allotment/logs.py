"""Process logging for `allotment serve`: one JSON object per line on stderr (python-json-logger
with orjson), or plain text with `ALLOTMENT_LOG_FORMAT=text`.

Loggers and what they write:
- `allotment.access`: one line per request: request_id, method, route (the template, never the
  path), status, duration_ms, key_id, client;
- `allotment.audit`: one line per change an admin makes (keys, meters, features, customers,
  subjects, entitlements, grants, resets, voids, overrides): action, route, status, key_id,
  request_id, target (the ids the path named) and id (the created resource's);
- `allotment.api`: database unavailable (reason, route), unhandled errors (type and stack,
  never the message);
- `uvicorn.error`: the server's start and stop.
Nothing a client sent (bodies, query strings, headers) and no key material is ever logged.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

from allotment.settings import Settings

audit_logger = logging.getLogger("allotment.audit")

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def audit(action: str, **fields: Any) -> None:
    """One audit line; `fields` are ids and codes chosen by the caller, never request content."""
    audit_logger.info(action, extra={"action": action, **fields})


def json_formatter() -> logging.Formatter:
    return OrjsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
    )


_listener: logging.handlers.QueueListener | None = None


def _stop_listener() -> None:
    """Writes what is still queued, then ends the thread (at exit, or on reconfiguring)."""
    # QueueListener has no public "running" flag; stopping it twice fails.
    if _listener is not None and _listener._thread is not None:
        _listener.stop()


def configure(settings: Settings) -> None:
    """JSON (or text) lines on stderr, formatted and written by a thread of their own: a request
    only queues its record (microseconds), it never waits for the formatting or the write."""
    global _listener
    output = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        output.setFormatter(json_formatter())
    else:
        output.setFormatter(logging.Formatter(_TEXT_FORMAT))
    if _listener is None:
        atexit.register(_stop_listener)
    else:
        _stop_listener()
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = logging.handlers.QueueListener(records, output)
    _listener.start()
    handler = logging.handlers.QueueHandler(records)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "allotment", False):
            root.removeHandler(existing)
    handler.allotment = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # uvicorn's own loggers go through the root handler; its access log is replaced by ours.
    for name in ("uvicorn", "uvicorn.error", audit_logger.name):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True


def configure_audit_only(settings: Settings) -> None:
    """For CLI commands: audit lines (key changes) on stderr, nothing else."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = json_formatter() if settings.log_format == "json" else None
    handler.setFormatter(formatter or logging.Formatter(_TEXT_FORMAT))
    audit_logger.handlers[:] = [handler]
    audit_logger.setLevel(logging.INFO)
    audit_logger.propagate = False


def uvicorn_log_config() -> dict[str, Any]:
    """Tells uvicorn to leave logging as `configure` set it."""
    return {"version": 1, "disable_existing_loggers": False}
