"""Runtime settings, read once at the edges (CLI entry, `create_app`) and passed inward."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///allotment.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALLOTMENT_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8888
    # PostgreSQL connections each process keeps open (as many again may open under load);
    # a SQLite file keeps SQLAlchemy's default pool whatever this says.
    pool_size: int = 10
