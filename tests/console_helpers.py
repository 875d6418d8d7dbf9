"""Log a test client into the console and read the CSRF token its pages carry."""

import re

import httpx

from tests.conftest import ADMIN_TOKEN

HTML = {"accept": "text/html"}


async def log_in(client: httpx.AsyncClient) -> str:
    """Log in with the admin token; the session's CSRF token."""
    response = await client.post("/console/login", data={"token": ADMIN_TOKEN})
    assert response.status_code == 303, response.text
    return csrf_of((await client.get("/console/simulator")).text)


def csrf_of(page: str) -> str:
    match = re.search(r'data-csrf="([^"]+)"', page)
    assert match, "the page carries no CSRF token"
    return match.group(1)
