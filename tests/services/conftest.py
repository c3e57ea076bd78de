"""Fixtures of the service suites."""

from __future__ import annotations

import pytest

from allotment.services.context import ServiceContext
from tests.factories import make_customer, make_feature, make_meter


@pytest.fixture
def setup(context: ServiceContext) -> ServiceContext:
    """Meter `tokens`, metered feature `ai_tokens` and customer `acme` (subject `acme`): where
    every entitlement test starts. A suite that needs more overrides `setup`, asking for this
    one by the same name."""
    make_meter(context)
    make_feature(context)
    make_customer(context)
    return context
