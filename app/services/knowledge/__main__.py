"""`python -m app.services.knowledge ingest PATH... --bot BOT` (files or folders) and `search QUERY --bot BOT`."""

import argparse
import asyncio
import sys
from pathlib import Path

from loguru import logger
from tqdm import tqdm

from app.config import Settings, load_settings
from app.db import Database
from app.schema import upgrade_to_head
from app.services.errors import AnswerError
from app.services.knowledge import KnowledgeBase
from app.services.knowledge.errors import KnowledgeError
from app.services.knowledge.ingest import ingest
from app.services.knowledge.parsing import SUFFIXES, parse_file


def files_under(paths: list[str]) -> list[Path]:
    """The given files, plus every supported file inside the given folders, in a stable order."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES))
        else:
            found.append(path)
    return found


async def run_ingest(settings: Settings, paths: list[Path], *, bot_id: str, category: str | None) -> int:
    """Ingest each file, reporting failures and going on; the exit code is 1 if any failed.

    The database is brought to the current schema first, as `run_server.py` does: a new user may load the
    knowledge base before ever starting the server.
    """
    await upgrade_to_head(settings)
    db = Database(settings)
    kb = KnowledgeBase(settings)
    failed = 0
    try:
        with tqdm(paths, unit="file", desc="ingest") as bar:
            for path in bar:
                bar.set_postfix_str(path.name)
                try:
                    parsed = parse_file(path.read_bytes(), path.name, bot_id=bot_id, category=category)
                    async with db.sessions() as session:
                        result = await ingest(session, kb, parsed)
                except (OSError, KnowledgeError, AnswerError) as exc:
                    failed += 1
                    tqdm.write(f"FAILED {path}: {exc}")
                    continue
                verb = "replaced" if result.replaced else "added"
                tqdm.write(f"{verb} {path} ({result.document.chunk_count} chunks, id {result.document.id})")
        if kb.backfill is not None:
            print("making the e5 vectors of the new chunks (about 0.15 s each) ...", flush=True)
            await kb.vectors_ready()  # made in the background; this process must not exit before
    finally:
        await kb.aclose()
        await db.dispose()
    print(f"{len(paths) - failed} of {len(paths)} files ingested for bot {bot_id!r}")
    return 1 if failed else 0


async def run_search(settings: Settings, query: str, *, bot_id: str, k: int) -> int:
    kb = KnowledgeBase(settings)
    try:
        passages = await kb.retrieve(bot_id, query, k=k, threshold=0.0)
    finally:
        await kb.aclose()
    for passage in passages:
        print(f"{passage.score:.3f}  {passage.title} ({passage.source})\n       {passage.text[:120]!r}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.services.knowledge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    load = commands.add_parser("ingest", help="load files (txt, md, pdf, FAQ csv/json) or folders")
    load.add_argument("paths", nargs="+", metavar="PATH")
    load.add_argument("--bot", required=True, help="Kakao bot id the documents belong to")
    load.add_argument("--category", help="category recorded on every document")
    find = commands.add_parser("search", help="show the best passages for a query (no threshold)")
    find.add_argument("query")
    find.add_argument("--bot", required=True)
    find.add_argument("-k", type=int, default=5)
    args = parser.parse_args(argv)

    # Only warnings, written through tqdm so they do not tear the progress bar.
    logger.remove()
    logger.add(lambda message: tqdm.write(message, end="", file=sys.stderr), level="WARNING")
    settings = load_settings()
    if args.command == "search":
        return asyncio.run(run_search(settings, args.query, bot_id=args.bot, k=args.k))
    paths = files_under(args.paths)
    if not paths:
        parser.error("no supported files found (.txt, .md, .pdf, .csv, .json)")
    return asyncio.run(run_ingest(settings, paths, bot_id=args.bot, category=args.category))


if __name__ == "__main__":
    sys.exit(main())
