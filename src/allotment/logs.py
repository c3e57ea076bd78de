"""Process logging for `allotment serve` (`log_config`, applied by uvicorn): one JSON object per
line on stderr (python-json-logger with orjson), or plain text with `ALLOTMENT_LOG_FORMAT=text`.

Loggers and what they write:
- `allotment.access`: one line per request: request_id, method, route (the template, never the
  path), status, duration_ms, key_id, client;
- `allotment.audit`: one line per change an admin makes (keys, meters, features, customers,
  subjects, entitlements, grants, resets, voids, overrides): action, route, status, key_id,
  request_id, target (the ids the path named) and id (the created resource's);
- `allotment.api`: database unavailable (reason, route), unhandled errors (type and stack,
  never the message);
- `allotment.services.maintenance`: the background worker pausing while the database is
  unavailable and resuming, or a step failing (type and stack);
- `uvicorn.error`: the server's start and stop.
Nothing a client sent (bodies, query strings, headers) and no key material is ever logged.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
import traceback
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

from allotment.settings import Settings

audit_logger = logging.getLogger("allotment.audit")

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def exception_fields(error: BaseException) -> dict[str, Any]:
    """What a log line may say about an exception: its type and where it was raised. Never its
    message, which may hold what a client sent, or SQL parameters."""
    frames = [
        f"{frame.filename}:{frame.lineno} in {frame.name}"
        for frame in traceback.extract_tb(error.__traceback__)[-12:]
    ]
    return {"error": type(error).__name__, "stack": frames}


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


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a record comes (a test runner swaps it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


_listeners: list[logging.handlers.QueueListener] = []


def background_handler(log_format: str = "json") -> logging.Handler:
    """A handler that only queues records: a thread of its own formats them (JSON or text) and
    writes them to stderr, so a request never waits for the formatting or the write."""
    output = _Stderr()
    output.setFormatter(
        json_formatter() if log_format == "json" else logging.Formatter(_TEXT_FORMAT)
    )
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, output)
    listener.start()
    if not _listeners:
        atexit.register(_stop_listeners)
    _listeners.append(listener)
    return logging.handlers.QueueHandler(records)


def _stop_listeners() -> None:
    """Writes what is still queued, then ends the threads."""
    while _listeners:
        _listeners.pop().stop()


def log_config(settings: Settings) -> dict[str, Any]:
    """The process's logging, as `logging.config.dictConfig` takes it (uvicorn applies it when
    `allotment serve` starts): every logger through one background handler; uvicorn's access log
    off, as ours replaces it."""
    passthrough = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"background": {"()": background_handler, "log_format": settings.log_format}},
        "root": {"handlers": ["background"], "level": settings.log_level.upper()},
        "loggers": {
            "uvicorn": passthrough,
            "uvicorn.error": passthrough,
            "uvicorn.access": {"handlers": [], "propagate": False},
            audit_logger.name: {**passthrough, "level": "INFO"},
        },
    }


def configure_audit_only(settings: Settings) -> None:
    """For CLI commands: audit lines (key changes) on stderr, nothing else."""
    handler = _Stderr()
    formatter = json_formatter() if settings.log_format == "json" else None
    handler.setFormatter(formatter or logging.Formatter(_TEXT_FORMAT))
    audit_logger.handlers[:] = [handler]
    audit_logger.setLevel(logging.INFO)
    audit_logger.propagate = False
