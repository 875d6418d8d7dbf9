"""How retrieved passages enter a prompt (`{context}`) and how they are recorded in `promptlog.sources`."""

import json

from app.services.knowledge.schemas import Passage


def format_context(passages: list[Passage]) -> str:
    """Numbered passages, each headed by its title and source, for the template's `{context}`."""
    blocks = []
    for number, passage in enumerate(passages, 1):
        page = f", {passage.page}쪽" if passage.page else ""
        blocks.append(f"[{number}] {passage.title} ({passage.source}{page})\n{passage.text.strip()}")
    return "\n\n".join(blocks)


def sources_json(passages: list[Passage]) -> str:
    """A compact JSON list of what was retrieved, for `promptlog.sources`."""
    return json.dumps(
        [
            {
                "doc_id": p.doc_id,
                "chunk_id": p.chunk_id,
                "title": p.title,
                "source": p.source,
                "page": p.page,
                "score": p.score,
            }
            for p in passages
        ],
        ensure_ascii=False,
    )
