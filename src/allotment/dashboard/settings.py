"""Dashboard settings, read once when the dashboard is created."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class DashboardSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALLOTMENT_DASHBOARD_", extra="ignore")

    # Signs session cookies. Unset, each process makes a random one: sessions then end when the
    # server restarts, which is safe; set it to keep people signed in across restarts.
    session_secret: str | None = None
    session_hours: int = 12
