"""Which callback URLs this deployment may POST to: the configured allow-list, the console simulator's signed sink,
plus the dev stand-in under DEBUG."""

from urllib.parse import urlsplit

from app.config import Settings
from app.kakao import check_callback_url
from app.services.simulator import sink_id

# The Kakao stand-in of app/api/dev.py, mounted only with DEBUG=true.
DEV_CALLBACK_PATH = "/test-callback"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def _is_dev_stand_in(url: str) -> bool:
    """A URL of the local Kakao stand-in, e.g. seed 003's `http://localhost:8000/test-callback`."""
    if check_callback_url(url, LOOPBACK_HOSTS, allow_http=True) is not None:
        return False
    path = urlsplit(url).path
    return path == DEV_CALLBACK_PATH or path.startswith(f"{DEV_CALLBACK_PATH}/")


def callback_problem(url: str, settings: Settings) -> str | None:
    """Why `url` may not receive a callback, or None when it may.

    With DEBUG=false only the allow-list (KAKAO_CALLBACK_ALLOWED_HOSTS, KAKAO_CALLBACK_ALLOW_HTTP) decides.
    With DEBUG=true the dev stand-in on a loopback host is also allowed, so the local walk-through needs no setup.
    A sink URL minted by the console (signed, fresh) is always allowed: it is delivered in-process, never over HTTP.
    """
    if sink_id(url, settings) is not None:
        return None
    reason = check_callback_url(
        url, settings.kakao_callback_allowed_hosts, allow_http=settings.kakao_callback_allow_http
    )
    if reason and settings.debug and _is_dev_stand_in(url):
        return None
    return reason
