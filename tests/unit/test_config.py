"""Settings: defaults, parsing, and one clear line for a wrong value."""

import os
import subprocess
import sys

from app.config import Settings
from tests.conftest import ROOT


def test_defaults_match_the_documented_values() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.database_url == "sqlite+aiosqlite:///./data/app.db"
    assert (s.openai_model, s.openai_temperature, s.openai_max_tokens) == ("gpt-4o", 0.2, 1000)
    assert (s.session_timeout_minutes, s.port, s.debug) == (30, 8000, False)
    assert s.kakao_skill_secret_header == "X-Skill-Secret"
    assert s.kakao_callback_allowed_hosts == ["bot-api.kakao.com"]
    assert s.kakao_callback_allow_http is False
    assert (s.worker_poll_seconds, s.task_max_attempts, s.callback_deadline_seconds) == (2, 3, 50)


def test_allowed_hosts_from_a_comma_list_and_blank_secrets_are_none() -> None:
    s = Settings(_env_file=None, kakao_callback_allowed_hosts=" Bot-Api.Kakao.com , 127.0.0.1,", admin_token="")  # type: ignore[call-arg]
    assert s.kakao_callback_allowed_hosts == ["bot-api.kakao.com", "127.0.0.1"]
    assert s.admin_token is None


def test_every_setting_is_documented_in_env_example() -> None:
    documented = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#") and "=" in line
    }
    assert {name.upper() for name in Settings.model_fields} == documented


def test_wrong_value_stops_start_up_with_one_line() -> None:
    env = {**os.environ, "PORT": "abc"}
    for command in (["run_server.py"], ["-m", "worker"]):
        done = subprocess.run(
            [sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "PORT" in lines[0] and "Traceback" not in done.stderr
