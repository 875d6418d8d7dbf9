"""SSRF through `userRequest.callbackUrl` against the real processes: no hostile URL is ever contacted."""

from pathlib import Path

import pytest

from tests.e2e.ssrf import hostile_callbacks, hostile_urls, production_urls


@pytest.mark.parametrize("mode", ["local", "production"])
async def test_hostile_callback_urls_are_never_contacted(pg_url: str, tmp_path: Path, mode: str) -> None:
    report = await hostile_callbacks(pg_url, tmp_path, mode=mode)
    print(report.summary())
    assert report.ok, report.summary()
    assert report.details["tripwire_hits"] == 0


def test_hostile_tables_cover_every_kind() -> None:
    urls = hostile_urls(1, 2)
    assert len(urls) >= 25 and len(production_urls(1)) >= 8
    assert len(set(urls)) == len(urls) and all("{token}" in url for url in urls + production_urls(1))
