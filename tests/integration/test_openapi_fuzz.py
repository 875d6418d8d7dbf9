"""`schemathesis run --checks all` against the API served by uvicorn (DEBUG=true, so the dev endpoints too) on a
real database, SQLite and PostgreSQL: no 5xx; every status, header and body is one the schema documents;
schema-valid requests are accepted and schema-violating ones refused; an unsupported method gets a 405 with a
right `Allow`; a request without the admin token is refused (the `ignored_auth` check, from the schema's bearer
scheme). Exclusions, each with its reason, are in schemathesis.toml next to this file.

FUZZ_EXAMPLES (default 10) bounds the examples per operation and phase; FUZZ_EXAMPLES=200 for a long run."""

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from app.config import Settings
from app.main import create_app
from tests.conftest import ADMIN_TOKEN
from tests.fake_services import free_port

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
# Fixed while the run is short, so a failure reproduces; a long run explores.
SEED = ["--seed", "1"] if EXAMPLES <= 20 else []


@pytest.fixture
def base_url(settings: Settings) -> Iterator[str]:
    """The app served by uvicorn on a thread of its own; no worker runs, so /skill does not wait for answers."""
    app = create_app(settings.model_copy(update={"debug": True, "skill_sync_wait_seconds": 0.0}))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def test_schemathesis_all_checks(base_url: str, tmp_path: Path) -> None:
    command = [
        str(SCHEMATHESIS), "--config-file", str(CONFIG), "--no-color",
        "run", f"{base_url}/openapi.json",
        "--checks", "all",
        "--max-examples", str(EXAMPLES),
        # One worker: with several, Hypothesis's shared caches race inside schemathesis (a flaky internal error).
        "--workers", "1",
        "-H", f"Authorization: Bearer {ADMIN_TOKEN}",
        *SEED,
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-15_000:] + result.stderr[-3_000:]


def test_the_schema_states_every_admin_route_needs_the_token(base_url: str) -> None:
    schema = httpx.get(f"{base_url}/openapi.json").json()
    assert schema["components"]["securitySchemes"]["AdminToken"] == {
        "type": "http", "scheme": "bearer", "description": "ADMIN_TOKEN",
    }  # fmt: skip
    guarded = {
        f"{method.upper()} {path}"
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if operation.get("security") == [{"AdminToken": []}]
    }
    # The chat API's seed paths (/api/chat/..., /api/models) take an API key instead, as /v1 does.
    keyed = {
        f"{method.upper()} {path}"
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if operation.get("security") == [{"ApiKey": []}]
    }
    assert {"POST /api/chat/completions", "POST /api/chat/stream", "GET /api/models", "POST /v1/chat/completions"} <= keyed
    admin = {
        f"{m.upper()} {p}" for p, item in schema["paths"].items() for m in item if p.startswith(("/admin", "/api"))
    } - keyed
    assert admin and admin <= guarded
