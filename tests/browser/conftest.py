"""Browser tests of the console: the real server (`run_server.py`: API + embedded worker, a temporary SQLite
database, offline answers) on a free port, driven by Debian's chromium through pytest-playwright.

Playwright's own browser download is not reachable here, so chromium is launched by its path. Without it the
tests are skipped with the reason shown; under CI=true they fail instead (`.ci/run` installs it).
Screenshots go to a temporary folder, or to CONSOLE_SCREENSHOTS (e.g. `docs/console`) when it is set.
"""

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserType, Page, Playwright, sync_playwright

from tests.conftest import ROOT
from tests.fake_services import free_port

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ADMIN_TOKEN = "browser-test-admin-token"
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    """Overrides pytest-playwright's: Debian's chromium, headless, quiet (no background requests)."""
    if not Path(CHROMIUM).exists():
        reason = f"chromium not found at {CHROMIUM} (apt-get install chromium fonts-noto-cjk)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return {
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run",
        ],
    }


# pytest-playwright's own fixtures, narrowed from the session to this package: while sync Playwright runs, its
# event loop counts as the thread's running loop, so the async tests after these would find one and fail.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="package")
def browser_type(playwright: Playwright, browser_name: str) -> BrowserType:
    return getattr(playwright, browser_name)


@pytest.fixture(scope="package")
def launch_browser(browser_type_launch_args: dict[str, Any], browser_type: BrowserType) -> Callable[..., Browser]:
    def launch(**kwargs: Any) -> Browser:
        return browser_type.launch(**{**browser_type_launch_args, **kwargs})

    return launch


@pytest.fixture(scope="package")
def browser(launch_browser: Callable[..., Browser]) -> Iterator[Browser]:
    browser = launch_browser()
    yield browser
    browser.close()


class Server:
    """The running server: its URL and its SQLite file (for setting up states a test needs)."""

    def __init__(self, url: str, database: Path) -> None:
        self.url = url
        self.database = database

    def sql(self, statement: str, *params: object) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.database, timeout=10) as conn:
            return conn.execute(statement, params).fetchall()


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory, browser_type_launch_args: dict[str, Any]) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("console-server")
    port = free_port()
    database = workdir / "app.db"
    env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    env.update({
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DEBUG": "false",
        "CHROMA_PATH": str(workdir / "chroma"),
        "EMBEDDING_BACKEND": "local",
        "LOG_LEVEL": "WARNING",
    })
    # The working directory is the temporary one, so a developer's .env is not read.
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run_server.py")], cwd=workdir, env=env, stdout=subprocess.DEVNULL,
        stderr=open(workdir / "server.log", "wb"),  # noqa: SIM115 - closed with the process
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"server did not start: {(workdir / 'server.log').read_text()[-2000:]}")
        time.sleep(0.2)
    yield Server(url, database)
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = os.environ.get("CONSOLE_SCREENSHOTS")
    folder = (ROOT / target) if target else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def browser_context_args() -> dict[str, Any]:
    return {"viewport": {"width": 1280, "height": 860}, "locale": "ko-KR", "timezone_id": "Asia/Seoul"}


@pytest.fixture
def expected_errors() -> list[str]:
    """Console messages a test provokes on purpose (the browser logs a 401 page as a failed load)."""
    return []


@pytest.fixture
def console(page: Page, server: Server, expected_errors: list[str]) -> Iterator[Page]:
    """A page on the console that refuses and records any request to another origin and any script error."""
    foreign: list[str] = []
    errors: list[str] = []

    def route(request_route: Any) -> None:
        if request_route.request.url.startswith(server.url + "/"):
            request_route.continue_()
        else:
            foreign.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(15_000)
    yield page
    assert foreign == [], f"requests to another origin: {foreign}"
    unexpected = [e for e in errors if not any(allowed in e for allowed in expected_errors)]
    assert unexpected == [], f"script errors: {unexpected}"


def log_in(page: Page, server: Server, path: str = "/console") -> None:
    page.goto(server.url + path)
    page.get_by_label("관리자 토큰").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="로그인").click()
    page.wait_for_url(lambda url: "/login" not in url)


@pytest.fixture
def shot(shots: Path) -> Any:
    def save(page: Page, name: str, **options: Any) -> None:
        page.screenshot(path=str(shots / f"{name}.png"), **options)
    return save

