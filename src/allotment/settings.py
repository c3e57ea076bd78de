"""Runtime settings, read once at the edges (CLI entry, `create_app`) and passed inward."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///allotment.db"


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
    # Ingest limits: events in one batch, and bytes of one event's data (413 beyond either).
    max_batch_events: int = 10_000
    max_event_data_bytes: int = 64 * 1024
