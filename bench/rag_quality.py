"""Retrieval quality on the hand-written FAQ sets of `bench/rag_eval` (frozen, holdout and dev splits).

Each domain becomes one bot whose entries are uploaded as an FAQ document through `ingest`, the path
`POST /api/knowledge/documents` takes; its queries then go through `retrieve` (what
`POST /api/knowledge/search` returns for k=10) and `offline_answer` (what a Kakao user reads offline).
"""

import asyncio
import json
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import respx
from alembic import command
from alembic.config import Config

from app.config import Settings
from app.db import Database
from app.services.knowledge import KnowledgeBase
from app.services.knowledge.ingest import ingest
from app.services.knowledge.schemas import DocType, FaqPair, ParsedDocument
from bench.common import percentile

EVAL = Path(__file__).resolve().parent / "rag_eval"
ROOT = EVAL.parent.parent
SPLITS = ("frozen", "holdout", "dev")
FAKE_OPENAI = "http://openai.fake/v1"
FAKE_DIM = 256


@dataclass
class DomainResult:
    """Ranking over the answerable queries; the offline answer's quoting or declining over all of them."""

    split: str
    domain: str
    answerable: int
    hit1: int
    hit3: int
    reciprocal_ranks: float
    unanswerable: int
    declined: int  # unanswerable queries the offline answer said it does not know
    refused: int  # answerable queries the offline answer wrongly declined
    suggested: int  # of those, how many listed the right entry's question among its suggestions
    wrong_quotes: int  # answerable queries answered with another entry's answer
    entries: int = 0
    ingest_seconds: float = 0.0  # the FAQ upload through `ingest`, wall time
    vectors_seconds: float = 0.0  # then until its e5 vectors are made in the background (0 without the rerank)
    latencies: list[float] = field(default_factory=list)  # ms per `offline_answer` call

    @property
    def mrr(self) -> float:
        return self.reciprocal_ranks / self.answerable

    @property
    def no_answer_precision(self) -> float:
        return self.declined / self.unanswerable


def domains(split: str) -> list[dict[str, Any]]:
    return [json.loads(path.read_text(encoding="utf-8")) for path in sorted((EVAL / split).glob("*.json"))]


def migrated_database(folder: str, *, openai_fake: bool = False, rerank: str = "auto") -> Settings:
    """Settings for a fresh SQLite database and Chroma folder under `folder`: local backend or OpenAI's, `SEMANTIC_RERANK`."""
    url = f"sqlite+aiosqlite:///{folder}/bench.db"
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    command.upgrade(config, "head")
    backend = {"embedding_backend": "openai", "openai_api_key": "sk-fake", "openai_base_url": FAKE_OPENAI}
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=url,
        chroma_path=f"{folder}/chroma",
        semantic_rerank=rerank,
        **(backend if openai_fake else {"embedding_backend": "local", "openai_api_key": None}),
    )


def fake_embeddings(request: httpx.Request) -> httpx.Response:
    """An OpenAI `/embeddings` stand-in: a fixed random unit vector per text (the path's shape, not its quality)."""
    inputs = json.loads(request.content)["input"]
    data = []
    for index, text in enumerate(inputs):
        vector = np.random.default_rng(zlib.crc32(text.encode())).standard_normal(FAKE_DIM)
        data.append({"object": "embedding", "index": index, "embedding": (vector / np.linalg.norm(vector)).tolist()})
    return httpx.Response(200, json={"object": "list", "data": data, "model": "fake", "usage": {}})


async def load_domain(db: Database, kb: KnowledgeBase, data: dict[str, Any]) -> dict[str, str]:
    """Upload the domain's entries as one FAQ document of bot `domain`; returns answer -> entry id."""
    parsed = ParsedDocument(
        bot_id=data["domain"],
        title=data["description"],
        source=f"{data['domain']}.json",
        type=DocType.FAQ,
        faqs=[FaqPair(question=e["question"], answer=e["answer"]) for e in data["entries"]],
    )
    async with db.sessions() as session:
        await ingest(session, kb, parsed)
    return {e["answer"]: e["id"] for e in data["entries"]}


async def evaluate(split: str, data: dict[str, Any], db: Database, kb: KnowledgeBase) -> DomainResult:
    bot = data["domain"]
    started = time.perf_counter()
    ids = await load_domain(db, kb, data)
    result = DomainResult(split, bot, 0, 0, 0, 0.0, 0, 0, 0, 0, 0, len(ids), time.perf_counter() - started)
    started = time.perf_counter()
    await kb.vectors_ready()  # questions are asked of the bot as users meet it once its e5 vectors are made
    result.vectors_seconds = time.perf_counter() - started
    for query in data["queries"]:
        expected = query["expected"]
        started = time.perf_counter()
        answer = await kb.offline_answer(bot, query["text"])
        result.latencies.append((time.perf_counter() - started) * 1000)
        if expected is None:
            result.unanswerable += 1
            result.declined += not answer.found
            continue
        ranked = [ids.get(p.answer or "") for p in await kb.retrieve(bot, query["text"], k=10)]
        result.answerable += 1
        result.hit1 += ranked[:1] == [expected]
        result.hit3 += expected in ranked[:3]
        result.reciprocal_ranks += 1 / (ranked.index(expected) + 1) if expected in ranked else 0.0
        if not answer.found:
            result.refused += 1
            result.suggested += expected in ranked[:3]  # the same ranking the declining answer lists
        elif ids.get(answer.sources[0].answer or "") != expected:
            result.wrong_quotes += 1
    return result


def run_quality(
    splits: tuple[str, ...] = SPLITS, *, openai_fake: bool = False, rerank: str = "auto"
) -> list[DomainResult]:
    """Every domain of the given splits, each as its own bot in one fresh database, with `SEMANTIC_RERANK=rerank`."""
    with tempfile.TemporaryDirectory() as folder:
        # Migrations run their own event loop, so before ours.
        settings = migrated_database(folder, openai_fake=openai_fake, rerank=rerank)
        if not openai_fake:
            return asyncio.run(_evaluate_all(settings, splits))
        with respx.mock(assert_all_called=True) as mock:
            mock.post(f"{FAKE_OPENAI}/embeddings").mock(side_effect=fake_embeddings)
            return asyncio.run(_evaluate_all(settings, splits))


async def _evaluate_all(settings: Settings, splits: tuple[str, ...]) -> list[DomainResult]:
    db = Database(settings)
    kb = KnowledgeBase(settings)
    try:
        return [await evaluate(split, data, db, kb) for split in splits for data in domains(split)]
    finally:
        await kb.aclose()
        await db.dispose()


def pooled(results: list[DomainResult], split: str) -> DomainResult:
    """The queries of several domains counted together."""
    both = DomainResult(split, "**all**", *(sum(getattr(r, f) for r in results) for f in _COUNTS))
    both.ingest_seconds = sum(r.ingest_seconds for r in results)
    both.vectors_seconds = sum(r.vectors_seconds for r in results)
    both.latencies = [ms for r in results for ms in r.latencies]
    return both


def compare(modes: dict[str, list[DomainResult]]) -> str:
    """One row per domain with each mode's figures side by side, then each mode's latency and ingest cost."""
    names = list(modes)
    figures = ("hit@1", "hit@3", "MRR", "no-answer precision", "answerable refused")
    head = " | ".join(f"{f} ({n})" for f in figures for n in names)
    lines = [f"| split | domain | {head} |", "|---|---|" + "---|" * len(figures) * len(names)]
    first = modes[names[0]]
    for split in dict.fromkeys(r.split for r in first):
        rows = {n: [r for r in results if r.split == split] for n, results in modes.items()}
        for i in range(len(rows[names[0]]) + 1):
            per = {n: rs[i] if i < len(rs) else pooled(rs, split) for n, rs in rows.items()}
            cells = [
                [
                    f"{r.hit1 / r.answerable:.3f}",
                    f"{r.hit3 / r.answerable:.3f}",
                    f"{r.mrr:.3f}",
                    f"{r.no_answer_precision:.2f}",
                    f"{r.refused}/{r.answerable}",
                ]
                for r in per.values()
            ]
            row = " | ".join(c[f] for f in range(len(figures)) for c in cells)
            lines.append(f"| {split} | {per[names[0]].domain} | {row} |")
    for name, results in modes.items():
        everything = pooled(results, "all")
        lines.append(
            f"{name}: offline answer latency p50 {percentile(everything.latencies, 0.5):.1f} ms, "
            f"p95 {percentile(everything.latencies, 0.95):.1f} ms over {len(everything.latencies)} questions; "
            f"FAQ upload {everything.ingest_seconds / everything.entries * 1000:.0f} ms per entry, then e5 vectors "
            f"{everything.vectors_seconds / everything.entries * 1000:.0f} ms per entry ({everything.entries} entries)"
        )
    return "\n".join(lines)


def report(results: list[DomainResult]) -> str:
    """A markdown table per domain and per split (split rows pool the queries of its domains)."""
    lines = [
        (
            "| split | domain | hit@1 | hit@3 | MRR | no-answer precision | answerable refused (right one suggested) "
            "| wrong entry quoted |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for split in dict.fromkeys(r.split for r in results):
        rows = [r for r in results if r.split == split]
        for r in [*rows, pooled(rows, split)]:
            lines.append(
                f"| {r.split} | {r.domain} | {r.hit1 / r.answerable:.3f} | {r.hit3 / r.answerable:.3f} | {r.mrr:.3f} "
                f"| {r.no_answer_precision:.2f} ({r.declined}/{r.unanswerable}) | {r.refused}/{r.answerable} ({r.suggested}) "
                f"| {r.wrong_quotes}/{r.answerable} |"
            )
    return "\n".join(lines)


_COUNTS = (
    "answerable",
    "hit1",
    "hit3",
    "reciprocal_ranks",
    "unanswerable",
    "declined",
    "refused",
    "suggested",
    "wrong_quotes",
    "entries",
)
