"""The web dashboard: server-rendered pages over the services, mounted by the API app at /ui.

A thin client like `cli/`: it reads forms, calls services and renders what they return. It never
imports `api/` or `storage/`; the layer contracts in pyproject.toml keep it so.
"""

from allotment.dashboard.app import create_dashboard

__all__ = ["create_dashboard"]
