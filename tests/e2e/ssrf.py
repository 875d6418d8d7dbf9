"""SSRF through `userRequest.callbackUrl`, against the real API and worker processes (a scenario).

Tripwire listeners on loopback addresses record every connection they get. Hostile callback URLs point at
them (other hosts, names and IP spellings of the allowed host, user-info, schemes, parser confusion); a
Kakao peer that answers with a redirect points at them too; and hostile URLs written straight into the
queue (past the API) test the worker's own check. None may ever be contacted.
"""

import asyncio
import secrets
import socket
from pathlib import Path

from tests.e2e.harness import BOT_ID, Harness, Report
from tests.fake_services import free_port


class Tripwire:
    """Listens on several loopback addresses of one port and records whoever connects."""

    def __init__(self) -> None:
        self.port = free_port()
        self.hits: list[tuple[str, bytes]] = []
        self._servers: list[asyncio.base_events.Server] = []

    async def start(self) -> "Tripwire":
        hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"] + (["::1"] if socket.has_ipv6 else [])
        for host in hosts:
            try:
                self._servers.append(await asyncio.start_server(self._record, host, self.port))
            except OSError:
                if host != "::1":  # a machine without IPv6 loopback
                    raise
        return self

    async def _record(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            data = await asyncio.wait_for(reader.read(300), 2)
        except (TimeoutError, OSError):
            data = b""
        self.hits.append((str(writer.get_extra_info("sockname")), data))
        writer.close()

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()


def hostile_urls(trap: int, kakao: int) -> list[str]:
    """Callback URLs a forged skill request could carry while only 127.0.0.1 (any port, http) is allowed."""
    path = f"/v1/bots/{BOT_ID}/callback/" + "{token}"
    return [
        f"http://127.0.0.2:{trap}{path}",  # another host
        f"http://127.0.0.3:{trap}{path}",
        f"http://localhost:{trap}{path}",  # a name for the allowed address
        f"http://127.0.0.1.:{trap}{path}",  # trailing dot
        f"http://127.1:{trap}{path}",  # other spellings of the allowed address
        f"http://2130706433:{trap}{path}",
        f"http://0x7f000001:{trap}{path}",
        f"http://0177.0.0.1:{trap}{path}",
        f"http://127.000.000.001:{trap}{path}",
        f"http://%31%32%37.0.0.1:{trap}{path}",
        f"http://[::1]:{trap}{path}",
        f"http://[::ffff:127.0.0.1]:{trap}{path}",
        f"http://127.0.0.1:{kakao}@127.0.0.2:{trap}{path}",  # user-info
        f"http://user:pass@127.0.0.1:{trap}{path}",
        f"http://127.0.0.1@127.0.0.2:{trap}{path}",
        f"http://127.0.0.2:{trap}\\@127.0.0.1:{kakao}{path}",  # parser confusion
        f"http://127.0.0.2:{trap}#@127.0.0.1:{kakao}{path}",
        f"http://127.0.0.2:{trap}?@127.0.0.1:{kakao}{path}",
        f"http://127.0.0.2:{trap}%2F@127.0.0.1:{kakao}{path}",
        f"http://１２７.０.０.１:{trap}{path}",  # full-width digits
        f"http://127.0.0.1:{trap}/v1/bots/{BOT_ID}/callback/../../../admin/" + "{token}",  # dot segments
        f"http://127.0.0.1:{trap}/%2e%2e/admin/" + "{token}",
        f"ftp://127.0.0.1:{trap}{path}",  # schemes
        f"gopher://127.0.0.1:{trap}/_POST%20/admin/" + "{token}",
        f"ws://127.0.0.1:{trap}{path}",
        "file:///etc/passwd?{token}",
        f"//127.0.0.2:{trap}{path}",
        f"127.0.0.2:{trap}{path}",
        f"javascript://127.0.0.1:{trap}/%0aalert(1)/" + "{token}",
    ]


PRODUCTION = {"KAKAO_CALLBACK_ALLOW_HTTP": "false", "KAKAO_CALLBACK_ALLOWED_HOSTS": "bot-api.kakao.com"}


def production_urls(trap: int) -> list[str]:
    """With the production allow-list (https://bot-api.kakao.com only), URLs that lead to the tripwire."""
    path = f"/v1/bots/{BOT_ID}/callback/" + "{token}"
    return [
        f"https://127.0.0.1:{trap}{path}",
        f"http://127.0.0.1:{trap}{path}",
        f"https://bot-api.kakao.com@127.0.0.1:{trap}{path}",
        f"https://bot-api.kakao.com:{trap}@127.0.0.2:{trap}{path}",
        f"https://127.0.0.2:{trap}#@bot-api.kakao.com{path}",
        f"https://127.0.0.2:{trap}\\@bot-api.kakao.com{path}",
        f"https://[::1]:{trap}{path}",
        f"https://2130706433:{trap}{path}",
        f"http://bot-api.kakao.com@127.0.0.1:{trap}{path}",
    ]


INSERT_TASK = """
WITH u AS (
    INSERT INTO appuser (bot_id, kakao_user_id, name_mode, created_at, last_seen_at)
    VALUES ($1, $2, false, now(), now()) RETURNING id
), c AS (
    INSERT INTO conversation (user_id, started_at, last_message_at) SELECT id, now(), now() FROM u
    RETURNING id, user_id
), m AS (
    INSERT INTO message (conversation_id, user_id, role, text, created_at)
    SELECT id, user_id, 'user', $3, now() FROM c RETURNING id, conversation_id, user_id
)
INSERT INTO aiprocessingtask (
    id, bot_id, user_id, conversation_id, message_id, status, attempts, max_attempts, run_after,
    callback_url, callback_not_before, callback_deadline, callback_status, input_tokens, output_tokens, created_at
)
SELECT gen_random_uuid(), $1, user_id, conversation_id, id, 'pending', 0, 3, now(),
       $4, now(), now() + interval '50 seconds', 'pending', 0, 0, now()
FROM m
"""


def with_tokens(h: Harness, templates: list[str]) -> list[str]:
    """Each URL with a token of its own, which must never show up in a log."""
    urls = []
    for i, template in enumerate(templates):
        token = f"hostile{i:02d}{secrets.token_hex(8)}"
        h.needles[f"token of {template!r}"] = token
        urls.append(template.replace("{token}", token))
    return urls


async def _send_hostile(h: Harness, urls: list[str], first_user: int) -> None:
    sent = await asyncio.gather(*(h.send(first_user + i, 1, callback_url=url) for i, url in enumerate(urls)))
    for s, url in zip(sent, urls, strict=True):
        assert s.status == 200 and not s.acked, f"{url!r} was accepted as a callback: {s.reply}"


async def _insert_hostile(h: Harness, urls: list[str]) -> None:
    """Past the API: tasks whose stored callback URL is hostile; the worker must refuse them itself."""
    for i, url in enumerate(urls):
        await h.fetch(INSERT_TASK, BOT_ID, f"ssrf-direct-{i}", f"direct {i}", url)
    await h.fetch("NOTIFY aiprocessingtask")


async def hostile_callbacks(url: str, workdir: Path, *, mode: str = "local", log_level: str = "DEBUG") -> Report:
    """Hostile callback URLs through /skill and straight into the queue, and (local mode) a redirecting
    Kakao: the audit plus the tripwire's record, which must stay empty."""
    trap = await Tripwire().start()
    try:
        env = PRODUCTION if mode == "production" else None
        async with Harness(url, workdir, env=env, log_level=log_level) as h:
            templates = hostile_urls(trap.port, h.kakao_server.port) if mode == "local" else production_urls(trap.port)
            urls = with_tokens(h, templates)
            await _send_hostile(h, urls, first_user=0)
            await _insert_hostile(h, urls)
            follow_up = None
            if mode == "local":
                # A Kakao peer that redirects: the worker must not follow (and never POSTs the URL twice).
                h.fakes.kakao.redirect_to = f"http://127.0.0.2:{trap.port}/v1/bots/{BOT_ID}/callback/redirected"
                redirected = await h.send(1000, 1)
                assert redirected.acked
                await h.settle(timeout=60)
                h.fakes.kakao.redirect_to = None
                follow_up = await h.send(1000, 2)  # the answer was kept for the user's next message
            await h.settle(timeout=60)
            refused = await h.fetch(
                "SELECT callback_status, callback_error FROM aiprocessingtask WHERE callback_url = ANY($1::text[])",
                urls,
            )
            report = await h.audit(f"SSRF, {mode} allow-list", load=f"{len(urls)} hostile URLs x 2 paths",
                                   faults="hostile callbackUrl" + (", redirecting Kakao" if mode == "local" else ""),
                                   expect_callbacks=False)
    finally:
        await trap.stop()
    report.details.update(tripwire_hits=len(trap.hits), refused_by_worker=len(refused))
    if trap.hits:
        report.problems.append(f"contacted: {trap.hits}")
    if len(refused) != len(urls) or {r["callback_status"] for r in refused} != {"failed"} or not all(
        r["callback_error"].startswith("refused:") for r in refused
    ):
        report.problems.append(f"the worker did not refuse every hostile URL itself: {[dict(r) for r in refused]}")
    expected_posts = ["REDIRECT"] if mode == "local" else []
    if [p.status for p in h.fakes.posts] != expected_posts:
        report.problems.append(f"Kakao got {[p.status for p in h.fakes.posts]}, expected {expected_posts}")
    if follow_up is not None and not any("MSG-u1000-1-END" in t for t in follow_up.reply_texts):
        report.problems.append(f"the redirected answer was not given on the next message: {follow_up.reply}")
    return report
