"""Benchmark the knowledge base offline: retrieval quality, ingestion rate, query latency, memory.

Quality: the hand-written FAQ sets of `bench/rag_eval` (see its README), frozen and dev splits, with
`SEMANTIC_RERANK` none and e5 side by side (answer latency and FAQ ingest time per entry for each).
Speed: a bot with synthetic Korean chunks in a temporary Chroma folder (no network, no model
download), timing retrieval one query at a time. Memory: this process's RSS with everything loaded.

    python -m bench.rag [--chunks 10000] [--queries 1000] [--size 400] [--skip-quality] [--skip-e5] [--skip-speed]
                        [--openai-fake]
"""

import argparse
import asyncio
import multiprocessing
import random
import tempfile
import time
from pathlib import Path

from app.config import Settings
from app.db import Database
from app.services.knowledge import KnowledgeBase
from app.services.knowledge.base import Chunk
from bench.common import percentile
from bench.rag_quality import compare, domains, load_domain, migrated_database, report, run_quality

BOT = "bench"
SYLLABLES = "가나다라마바사아자차카타파하고노도로모보소오조초코토포호구누두루무부수우주추쿠투푸후기니디리미비시이지치"
TOPICS = ["배송", "환불", "교환", "결제", "쿠폰", "적립금", "회원", "매장", "주차", "포장", "예약", "상담", "영수증", "할부"]
VERBS = ["신청할 수 있어요", "확인해 주세요", "처리돼요", "안내해 드려요", "걸려요", "가능해요", "불가능해요"]


def synthetic_text(rng: random.Random, size: int) -> str:
    """Sentences mixing service words and made-up nouns, about `size` characters long."""
    sentences: list[str] = []
    while sum(len(s) + 1 for s in sentences) < size:
        noun = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3)))
        sentences.append(
            f"{rng.choice(TOPICS)} {noun}은 {rng.randint(1, 30)}일 안에 {rng.choice(TOPICS)} 기준으로 {rng.choice(VERBS)}."
        )
    return " ".join(sentences)


def synthetic_query(rng: random.Random) -> str:
    noun = "".join(rng.choice(SYLLABLES) for _ in range(2))
    return f"{rng.choice(TOPICS)} {noun} {rng.choice(TOPICS)} 언제 {rng.choice(VERBS)}?"


async def run(chunks: int, queries: int, size: int) -> None:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(_env_file=None, chroma_path=folder, embedding_backend="local", openai_api_key=None)  # type: ignore[call-arg]
        kb = KnowledgeBase(settings)
        reranked = kb.encoder is not None and chunks <= settings.semantic_max_chunks
        print(f"\n{chunks} chunks, ranked by {'e5 rerank' if reranked else 'the hybrid score'}")
        await kb.retrieve(BOT, "준비")  # load the analyser outside the timings
        items = [
            Chunk(f"doc{i // 50}:1:{i % 50}", synthetic_text(rng, size), {"doc_id": f"doc{i // 50}", "type": "text"})
            for i in range(chunks)
        ]
        started = time.perf_counter()
        for start in range(0, chunks, 1000):
            await kb.add(BOT, items[start : start + 1000])
        ingest_seconds = time.perf_counter() - started
        print(f"ingested {chunks} chunks (~{size} chars) in {ingest_seconds:.1f}s: {chunks / ingest_seconds:.1f} chunks/s")
        if reranked:
            started = time.perf_counter()
            await kb.vectors_ready()
            vectors_seconds = time.perf_counter() - started
            print(f"then e5 vectors in the background: {vectors_seconds:.1f}s, {chunks / vectors_seconds:.1f} chunks/s")

        started = time.perf_counter()
        await kb.retrieve(BOT, synthetic_query(rng))
        print(f"first query (reads the bot's chunks and builds the BM25 index over {chunks}): {(time.perf_counter() - started) * 1000:.0f} ms")

        latencies = []
        for _ in range(queries):
            query = synthetic_query(rng)
            started = time.perf_counter()
            await kb.retrieve(BOT, query, threshold=0.0)
            latencies.append((time.perf_counter() - started) * 1000)
        print(
            f"query latency over {queries} queries: p50 {percentile(latencies, 0.5):.1f} ms, "
            f"p95 {percentile(latencies, 0.95):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms"
        )
        await throughput(kb, [synthetic_query(rng) for _ in range(queries)])
        await kb.aclose()


async def throughput(kb: KnowledgeBase, questions: list[str], concurrency: int = 16) -> None:
    """Questions answered per second with `concurrency` at once, as a worker's parallel tasks would ask them."""
    pending = iter(questions)

    async def asker() -> None:
        for question in pending:
            await kb.retrieve(BOT, question, threshold=0.0)

    started = time.perf_counter()
    await asyncio.gather(*(asker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    print(f"{len(questions)} queries, {concurrency} at a time: {len(questions) / seconds:.0f} queries/s")


def rss_mb() -> tuple[float, float]:
    """This process's resident memory now and at its peak, in MB (Linux)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def worker_rss() -> str:
    """RSS of a fresh process holding the worker's modules, then after its first offline answer (Kiwi and e5 loaded)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_first_answer_rss)


def _first_answer_rss() -> str:
    import worker.runtime  # noqa: F401 - the worker's own imports, as `python -m worker` holds them
    from app.services.pipeline import build_pipeline  # noqa: F401

    imported, _ = rss_mb()
    data = domains("dev")[0]
    with tempfile.TemporaryDirectory() as folder:
        settings = migrated_database(folder)

        async def answer() -> bool:
            db, kb = Database(settings), KnowledgeBase(settings)
            await load_domain(db, kb, data)  # the upload's own path
            await kb.vectors_ready()
            await kb.offline_answer(data["domain"], "실비 청구 어떻게 해요?")
            await kb.aclose()
            await db.dispose()
            return kb.encoder is not None

        reranked = asyncio.run(answer())
    now, peak = rss_mb()
    return (
        f"worker process RSS: {imported:.0f} MB with its modules imported, {now:.0f} MB (peak {peak:.0f} MB) after "
        f"its first offline answer ({'Kiwi and e5 loaded' if reranked else 'Kiwi loaded, no e5 here'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=10_000, help="chunks of the large bot (hybrid score)")
    parser.add_argument("--rerank-chunks", type=int, default=500, help="chunks of the reranked bot (0: none)")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--size", type=int, default=400, help="characters per chunk")
    parser.add_argument("--skip-quality", action="store_true", help="no rag_eval run")
    parser.add_argument("--skip-none", action="store_true", help="no SEMANTIC_RERANK=none run beside the default")
    parser.add_argument("--skip-speed", action="store_true", help="no ingestion and latency run")
    parser.add_argument("--openai-fake", action="store_true", help="also the OpenAI embeddings path on a local fake")
    args = parser.parse_args()
    if not args.skip_quality:
        modes = {"auto": run_quality()}
        print("SEMANTIC_RERANK=auto (the default: e5 rerank)")
        print(report(modes["auto"]))
        if not args.skip_none:
            modes["none"] = run_quality(rerank="none")
            print("\nSEMANTIC_RERANK=none")
            print(report(modes["none"]))
        print()
        print(compare(modes))
        rss, peak = rss_mb()
        print(f"process RSS after the quality runs: {rss:.0f} MB (peak {peak:.0f} MB)\n")
    if args.openai_fake:
        print("OpenAI embeddings path against a local fake (random vectors: the path's shape, not its quality)")
        print(report(run_quality(openai_fake=True)))
    if not args.skip_speed:
        asyncio.run(run(args.chunks, args.queries, args.size))
        if args.rerank_chunks:
            asyncio.run(run(args.rerank_chunks, args.queries, args.size))
    rss, peak = rss_mb()
    print(f"this benchmark's RSS with the models and every bot loaded: {rss:.0f} MB (peak {peak:.0f} MB)")
    print(worker_rss())


if __name__ == "__main__":
    main()
