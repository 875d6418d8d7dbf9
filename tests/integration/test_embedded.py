"""The embedded mode: /skill, the in-process wake-up, the worker and the callback in one process."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import respx
from fastapi import FastAPI

from app.config import Settings
from app.models import CallbackStatus, TaskStatus
from tests.conftest import FIXTURES, ROOT
from tests.fake_services import free_port
from tests.queue_helpers import FakePipeline, eventually
from worker.runtime import Worker

SUCCESS = {"taskId": "t", "status": "SUCCESS", "message": "ok", "timestamp": 0}


async def test_skill_request_is_answered_through_the_callback(
    settings: Settings, app: FastAPI, client: httpx.AsyncClient
) -> None:
    request = json.loads((FIXTURES / "skill_request_callback.json").read_text())
    slow_poll = settings.model_copy(update={"worker_poll_seconds": 30})  # only a wake-up can be this quick
    with respx.mock(assert_all_called=False) as kakao:
        route = kakao.post(request["userRequest"]["callbackUrl"]).respond(200, json=SUCCESS)
        async with Worker(slow_poll, app.state.db, FakePipeline(), wakeup=app.state.wakeup):
            ack = (await client.post("/skill", json=request)).json()
            assert ack["useCallback"] is True

            async def delivered() -> bool:
                return route.call_count == 1

            await eventually(delivered, timeout=5)
    body = json.loads(route.calls[0].request.content)
    assert body["template"]["outputs"][0]["simpleText"]["text"].startswith("answer ")
    task = (await client.get("/admin/ai-tasks", headers={"Authorization": "Bearer test-admin-token"})).json()[0]
    assert (task["status"], task["callback_status"]) == (TaskStatus.COMPLETED, CallbackStatus.SENT)


def test_run_server_stops_gracefully_on_sigterm(tmp_path: Path, sqlite_template: Path) -> None:
    db_path = tmp_path / "app.db"
    db_path.write_bytes(sqlite_template.read_bytes())
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": f"sqlite+aiosqlite:///{db_path}",
        "PORT": str(port),
        "EMBEDDED_WORKER": "true",
        "ADMIN_TOKEN": "embedded-test-token",
    }
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run_server.py")], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/admin/health", headers={"Authorization": "Bearer embedded-test-token"})
                if health.status_code == 200 and health.json()["live_workers"] == 1:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("server did not come up")
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output
    assert "stopped" in output and "Worker" in output
