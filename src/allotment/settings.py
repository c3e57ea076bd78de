"""Runtime settings, read once at the edges (CLI entry, `create_app`) and passed inward.

Every field is also an environment variable: `ALLOTMENT_` + the name in capitals
(`max_body_bytes` -> `ALLOTMENT_MAX_BODY_BYTES`). The README lists them all with their meaning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

if TYPE_CHECKING:
    from allotment.storage.database import DatabaseOptions

DEFAULT_DATABASE_URL = "sqlite:///allotment.db"

Seconds = Annotated[float, Field(gt=0)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALLOTMENT_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8888
    # Worker processes of `allotment serve` (ALLOTMENT_WORKERS); each has its own pool.
    workers: int = 1
    # PostgreSQL connections each worker process keeps open (ALLOTMENT_POOL_SIZE; as many again
    # may open under load), so the server holds up to 2 x workers x pool_size connections: keep
    # that under the server's max_connections. A request holds one connection while it runs, and
    # a worker runs at most 40 requests at once (its thread pool), so more than that never helps.
    # A SQLite file keeps SQLAlchemy's default pool whatever this says.
    pool_size: int = 10
    # How often each server process looks for maintenance work (roll-up compaction, meter
    # backfills, checkpoints) when no ingest has woken it; 0 turns the in-server worker off
    # (then run `allotment maintenance` yourself, or reads stay exact but grow slower).
    maintenance_interval_seconds: float = 1.0
    # How long a server process trusts an API key it has checked before asking the database
    # again: a key revoked by another process (or the CLI) stops working within this time.
    api_key_cache_seconds: float = 5.0
    # Whether checks may be answered again from a response this host computed earlier, while
    # no process on this host has written anything it depends on (storage/change_board.py):
    # `auto` (SQLite, or a PostgreSQL on this host), `on`, or `off`. Only processes on one host
    # see its board: set `off` where servers or the CLI on another host write to the database.
    change_board: Literal["auto", "on", "off"] = "auto"
    # Webhook notifications: whether this server process sends them (with `false`, run
    # `allotment worker` elsewhere), and how long one attempt may take before it counts as failed.
    webhook_sender_enabled: bool = True
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=300)

    # -- request limits (413 problem+json beyond them, 400 for depth) ---------------------------
    # Any request body, ingest included; refused from Content-Length before a byte is read.
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    # Ingest: events in one batch, and the encoded size of one event's `data`.
    max_batch_events: int = Field(default=10_000, gt=0)
    max_event_data_bytes: int = Field(default=64 * 1024, gt=0)
    # Other JSON bodies: nesting depth, items of any one array (e.g. a subject upsert), one
    # string's length, and the encoded size of one `metadata` object.
    max_json_depth: int = Field(default=32, gt=1)
    max_array_items: int = Field(default=1_000, gt=0)
    max_string_bytes: int = Field(default=64 * 1024, gt=0)
    max_metadata_bytes: int = Field(default=16 * 1024, gt=0)
    # Path plus query string (414 beyond it).
    max_url_bytes: int = Field(default=8 * 1024, gt=0)

    # -- database timeouts (503 + Retry-After when they run out) --------------------------------
    database_connect_timeout_seconds: Seconds = 3.0
    # PostgreSQL's statement_timeout; a statement whose server stopped answering is abandoned
    # on the client a little after it too.
    database_statement_timeout_seconds: Seconds = 10.0
    # Waiting for a free pooled connection.
    database_pool_timeout_seconds: Seconds = 3.0
    # SQLite: how long a writer waits for the file's write lock.
    sqlite_busy_timeout_seconds: Seconds = 5.0
    # GET /readyz answers 503 when the database has not answered within this.
    readiness_timeout_seconds: Seconds = 1.5
    # What 503 answers put in Retry-After.
    retry_after_seconds: int = Field(default=2, gt=0)

    # -- connections (`allotment serve`) ---------------------------------------------------------
    # A connection must finish sending its request line and headers within this, and its body
    # within `body_read_timeout_seconds` after that; an idle keep-alive connection closes after
    # `keep_alive_timeout_seconds`.
    header_read_timeout_seconds: Seconds = 10.0
    body_read_timeout_seconds: Seconds = 30.0
    keep_alive_timeout_seconds: Seconds = 5.0

    # -- abuse limits (429 + Retry-After); "N/second", "N/minute", ...; "" turns one off -------
    rate_limit_auth_failures: str = "20/minute"  # per client address
    rate_limit_writes: str = "200/second"  # per API key: every write but ingest
    rate_limit_ingest: str = "1000/second"  # per API key: POST /api/v1/events

    # -- browsers ----------------------------------------------------------------------------
    # Origins allowed to call the API from a browser (CORS); none by default. "*" allows any.
    cors_allow_origins: Annotated[list[str], NoDecode] = []
    cors_max_age_seconds: int = Field(default=600, ge=0)
    # Strict-Transport-Security max-age; 0 sends none (set it when serving behind HTTPS).
    hsts_seconds: int = Field(default=0, ge=0)

    # -- operations --------------------------------------------------------------------------
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Serve GET /metrics (Prometheus text format, no key needed).
    metrics_enabled: bool = True
    # Serve /api/v1/openapi.json and /api/v1/docs (no key needed).
    docs_enabled: bool = True
    # How long an Idempotency-Key is remembered.
    idempotency_key_ttl_hours: float = Field(default=24.0, gt=0)
    # How long a customer portal token lives when its creator names no `expiresAt`.
    portal_token_ttl_hours: float = Field(default=1.0, gt=0)

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """`ALLOTMENT_CORS_ALLOW_ORIGINS=https://a.example,https://b.example`."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def database_options(self) -> DatabaseOptions:
        from allotment.storage.database import DatabaseOptions

        return DatabaseOptions(
            pool_size=self.pool_size,
            connect_timeout=self.database_connect_timeout_seconds,
            statement_timeout=self.database_statement_timeout_seconds,
            pool_timeout=self.database_pool_timeout_seconds,
            sqlite_busy_timeout=self.sqlite_busy_timeout_seconds,
            retry_after=self.retry_after_seconds,
            change_board=self.change_board,
        )
