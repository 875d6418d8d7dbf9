"""Fixtures of the process-level scenarios: a fresh migrated PostgreSQL database per test.

Heavy scenarios (`@pytest.mark.heavy`) run only when asked: `pytest -m heavy` or `CHAOS_HEAVY=1`.
"""

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import _pg_admin, pg_base_url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("CHAOS_HEAVY") == "1" or "heavy" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="heavy scenario: run with `pytest -m heavy` or `python -m bench.chaos`")
    for item in items:
        if "heavy" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def pg_url(postgres_template: str | None) -> Iterator[str]:
    """A freshly migrated PostgreSQL database on the shared test server, dropped afterwards."""
    if postgres_template is None:
        pytest.skip(f"PostgreSQL unreachable at {pg_base_url()} (set TEST_DATABASE_URL)")
    name = f"chaos_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"'))
    yield make_url(pg_base_url()).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
