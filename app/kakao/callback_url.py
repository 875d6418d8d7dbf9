"""SSRF guard and log redaction for `userRequest.callbackUrl` (settings: README, `KAKAO_CALLBACK_ALLOWED_HOSTS`).

The callback URL comes from an unsigned request body, so it is attacker-controlled until checked.
The check compares the URL as given; it never normalises or re-encodes it.
"""

import re
from collections.abc import Collection
from urllib.parse import unquote, urlsplit

KAKAO_CALLBACK_PATH_PREFIX = "/v1/bots/"
MAX_CALLBACK_URL_CHARS = 2048

# RFC 3986 characters only, and '%' only as a valid escape. Anything else (spaces, backslashes,
# control or non-ASCII characters) is a parser-confusion trick or would be re-encoded by the
# HTTP client, so Kakao would no longer see the token it issued.
_URL_CHARS = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*")
_NOT_LOGGABLE = re.compile(r"[^\x21-\x7e]")
_TOKEN_MARKER = "/callback/"


def _normalise_allowed(host: str) -> str:
    host = host.strip().lower().removesuffix(".")
    # A bare IPv6 entry is compared in its URL form, "[::1]".
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _split_host_port(netloc: str) -> tuple[str, str]:
    if netloc.endswith("]"):
        return netloc, ""
    host, separator, port = netloc.rpartition(":")
    return (host, port) if separator else (port, "")


def _authority_problem(netloc: str, allowed_hosts: Collection[str], allow_http: bool) -> str | None:
    if "@" in netloc:
        return "userinfo not allowed"
    host, port = _split_host_port(netloc)
    if not host:
        return "host missing"
    if host.lower() not in {_normalise_allowed(allowed) for allowed in allowed_hosts}:
        return "host not allowed"
    if port and not port.isdigit():
        return "port not allowed"
    if port and not allow_http and int(port) != 443:
        return "port not allowed"
    return None


def _has_dot_segment(path: str) -> bool:
    # HTTP clients and servers collapse "." and ".." (even percent-encoded), escaping the path prefix.
    return any(unquote(segment) in {".", ".."} for segment in path.split("/"))


def check_callback_url(url: str, allowed_hosts: Collection[str], allow_http: bool = False) -> str | None:
    """None when `url` may receive the callback POST, else a short reason for the logs.

    Production: https, a host exactly in `allowed_hosts`, no user-info, port 443 or none, a path
    under /v1/bots/. `allow_http` (local testing only) also admits http, any port and any path.
    """
    if not url:
        return "empty url"
    if len(url) > MAX_CALLBACK_URL_CHARS:
        return "url too long"
    if not _URL_CHARS.fullmatch(url):
        return "invalid characters"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "unparseable url"
    if parts.scheme not in ({"https", "http"} if allow_http else {"https"}):
        return "scheme not allowed"
    if "#" in url:
        return "fragment not allowed"
    if problem := _authority_problem(parts.netloc, allowed_hosts, allow_http):
        return problem
    if _has_dot_segment(parts.path):
        return "path not allowed"
    if not allow_http and not parts.path.startswith(KAKAO_CALLBACK_PATH_PREFIX):
        return "path not allowed"
    return None


def redact_callback_url(url: str) -> str:
    """The URL cut after "/callback/", with query and user-info masked: safe to log."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "***"
    if not parts.scheme or not host:
        return "***"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    marker = parts.path.lower().find(_TOKEN_MARKER)
    if marker >= 0:
        path = parts.path[: marker + len(_TOKEN_MARKER)] + "***"
    else:
        path = parts.path if parts.path in {"", "/"} else "/***"
    query = "?***" if parts.query else ""
    return _NOT_LOGGABLE.sub("?", f"{parts.scheme}://{netloc}{path}{query}")
