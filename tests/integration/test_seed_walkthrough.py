"""Seed 003's local walk-through, verbatim, against a real `run_server.py` with DEBUG=true (both databases)."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.config import Settings
from app.db import Database
from app.kakao import SkillResponse
from app.models import AIProcessingTask, CallbackStatus, TaskStatus
from tests.conftest import ROOT, make_settings

# Exactly the body seed 003 documents; its callback URL names port 8000, so the server must listen there.
SEED_BODY = (
    '{"userRequest":{"utterance":"테스트 메시지","user":{"id":"test-user"}},'
    '"callbackUrl":"http://localhost:8000/test-callback"}'
)
SEED_PORT = 8000
START_SECONDS = 60
ANSWER_SECONDS = 30


def _port_taken(port: int) -> bool:
    try:
        with socket.create_connection(("localhost", port), timeout=1):
            return True
    except OSError:
        return False


def _seed_environment(database_url: str, tmp_path: Path) -> dict[str, str]:
    """The caller's environment minus every setting, then only DEBUG=true and what isolates the run."""
    settings = {name.upper() for name in Settings.model_fields}
    env = {key: value for key, value in os.environ.items() if key.upper() not in settings}
    env.update(
        PYTHONPATH=str(ROOT),
        DEBUG="true",
        DATABASE_URL=database_url,
        CHROMA_PATH=str(tmp_path / "chroma"),
    )
    return env


@contextmanager
def _debug_server(database_url: str, tmp_path: Path) -> Iterator[Path]:
    """`python run_server.py` (API and embedded worker) on port 8000; yields its log file."""
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "run_server.py")], cwd=tmp_path,
            env=_seed_environment(database_url, tmp_path), stdout=out, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + START_SECONDS
            while not _healthy():
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"server did not come up:\n{log.read_text()}")
                time.sleep(0.2)
            yield log
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _healthy() -> bool:
    try:
        return httpx.get(f"http://localhost:{SEED_PORT}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _wait_for_callbacks(log: Path) -> list[dict[str, Any]]:
    """GET /test-callback until something arrived, within ANSWER_SECONDS."""
    deadline = time.monotonic() + ANSWER_SECONDS
    while True:
        recorded: list[dict[str, Any]] = httpx.get(f"http://localhost:{SEED_PORT}/test-callback", timeout=5).json()
        if recorded:
            return recorded
        if time.monotonic() > deadline:
            pytest.fail(f"no callback within {ANSWER_SECONDS} s:\n{log.read_text()}")
        time.sleep(0.2)


async def _stored_tasks(database_url: str) -> list[AIProcessingTask]:
    db = Database(make_settings(database_url))
    try:
        async with db.sessions() as session:
            return list((await session.execute(select(AIProcessingTask))).scalars())
    finally:
        await db.dispose()


def test_seed_walk_through_verbatim(database_url: str, tmp_path: Path) -> None:
    if _port_taken(SEED_PORT):
        if os.environ.get("CI") == "true":
            pytest.fail(f"port {SEED_PORT} is taken; the verbatim walk-through needs it")
        pytest.skip(f"port {SEED_PORT} is taken; the verbatim walk-through needs it")
    with _debug_server(database_url, tmp_path) as log:
        ack = httpx.post(
            f"http://localhost:{SEED_PORT}/skill", headers={"Content-Type": "application/json"},
            content=SEED_BODY.encode(), timeout=10,
        )
        assert ack.status_code == 200, ack.text
        assert ack.json() == {"version": "2.0", "useCallback": True, "data": {"text": "AI가 답변을 생성하고 있어요!"}}

        [callback] = _wait_for_callbacks(log)

    body = callback["body"]
    assert body["version"] == "2.0" and "useCallback" not in body
    answer = SkillResponse.model_validate(body)  # every Kakao 2.0 limit: 1-3 bubbles, non-blank text, ...
    assert answer.template is not None and all(output.simple_text for output in answer.template.outputs)
    [task] = asyncio.run(_stored_tasks(database_url))
    assert (task.bot_id, task.status, task.callback_status) == ("default", TaskStatus.COMPLETED, CallbackStatus.SENT)
    assert task.callback_url == "http://localhost:8000/test-callback"
