"""Ranking: cosine similarity blended with BM25 coverage of the expanded query, and e5 on top for reranked bots."""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from app.services.knowledge.lexical import BM25Index
from app.services.knowledge.schemas import DocType, Passage, SearchFilter
from app.services.knowledge.semantic import SEMANTIC_WEIGHT, stored_matrix

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

# Hashed vectors catch shared word pieces; BM25 over the expanded query rewards rare shared words and
# their CoNg neighbours. Chosen on the dev split of bench/rag_eval (MRR 0.750 against 0.705 for
# reciprocal rank fusion of the same two lists and 0.739 for equal weights; docs/knowledge.md).
VECTOR_WEIGHT = 0.4
LEXICAL_WEIGHT = 0.6
# Below this a passage shares next to nothing with the query: never returned, never put into a prompt.
MIN_SCORE = 0.1
# Candidates taken from each side before blending.
CANDIDATES = 30
_FILTER_KEYS = ("type", "category", "source", "doc_id")


class Corpus:
    """One bot's chunks as of a collection revision, with their BM25 index and, if asked, their semantic vectors."""

    def __init__(
        self,
        revision: str | None,
        ids: list[str],
        documents: list[str],
        metadatas: list[dict],
        semantic_model: str | None = None,
        vectors: np.ndarray | None = None,
    ) -> None:
        self.revision = revision
        self.ids = ids
        self.documents = documents
        self.metadatas = metadatas
        self.position = {chunk_id: i for i, chunk_id in enumerate(ids)}
        self.index = BM25Index([str(m.get("terms", "")).split() for m in metadatas])
        # A reranked bot (every chunk has a vector of `semantic_model`, and the embeddings were read) is ranked
        # whole in memory, without Chroma's index; None for any other bot.
        reranked = semantic_model is not None and vectors is not None
        self.semantic = stored_matrix(metadatas, semantic_model) if reranked else None
        self.vectors = _unit_rows(vectors) if self.semantic is not None else None
        self._columns = {
            key: np.array([str(m.get(key, "")) for m in metadatas], dtype=object) for key in _FILTER_KEYS
        }

    def allowed(self, search_filter: SearchFilter | None) -> np.ndarray | None:
        """A mask of chunks passing the filter (None: all pass)."""
        if search_filter is None or search_filter.where() is None:
            return None
        mask = np.ones(len(self.ids), dtype=bool)
        for key, values in search_filter.model_dump().items():
            if values:
                mask &= np.isin(self._columns[key], [str(v) for v in values])
        return mask


def hybrid_search(
    collection: "Collection",
    corpus: Corpus,
    query_vector: list[float],
    query_terms: list[str] | Mapping[str, float],
    *,
    k: int,
    threshold: float,
    confident_at: float,
    search_filter: SearchFilter | None = None,
) -> list[Passage]:
    """The `k` best chunks scoring at least `threshold`, marked confident from `confident_at` (blocking)."""
    count = collection.count()
    if count == 0:
        return []
    where = search_filter.where() if search_filter else None
    found = collection.query(
        query_embeddings=[query_vector],
        n_results=min(CANDIDATES, count),
        where=where,
        include=["documents", "metadatas", "distances"],
    )
    candidates: dict[str, dict[str, Any]] = {}
    for chunk_id, doc, meta, distance in zip(
        found["ids"][0], found["documents"][0], found["metadatas"][0], found["distances"][0], strict=True
    ):
        candidates[chunk_id] = {"text": doc, "meta": meta, "cosine": 1.0 - float(distance)}

    raw, coverage = corpus.index.scores(query_terms)
    top = corpus.index.top(raw, CANDIDATES, corpus.allowed(search_filter))
    others = [corpus.ids[i] for i in dict.fromkeys(top) if corpus.ids[i] not in candidates]
    if others:
        # The vector side did not return these; fetch their vectors (and skip ones deleted since).
        extra = collection.get(ids=others, include=["documents", "metadatas", "embeddings"])
        query = np.asarray(query_vector, dtype=np.float32)
        for chunk_id, doc, meta, vector in zip(
            extra["ids"], extra["documents"], extra["metadatas"], extra["embeddings"], strict=True
        ):
            candidates[chunk_id] = {"text": doc, "meta": meta, "cosine": _cosine(query, vector)}

    passages = []
    for chunk_id, hit in candidates.items():
        position = corpus.position.get(chunk_id)
        lexical = float(coverage[position]) if position is not None else 0.0
        score = VECTOR_WEIGHT * max(hit["cosine"], 0.0) + LEXICAL_WEIGHT * lexical
        if score >= threshold:
            passages.append(to_passage(chunk_id, hit["text"], hit["meta"], score, confident=score >= confident_at))
    passages.sort(key=lambda p: p.score, reverse=True)
    return passages[:k]


def semantic_search(
    corpus: Corpus,
    query_vector: list[float],
    query_terms: Mapping[str, float],
    semantic_query: np.ndarray,
    *,
    k: int,
    threshold: float,
    confident_at: float,
    search_filter: SearchFilter | None = None,
) -> list[Passage]:
    """Every chunk of a reranked bot scored in memory: `SEMANTIC_WEIGHT` × e5 cosine + the rest × hybrid (blocking).

    The same score as `hybrid_search` blended with e5, over all chunks instead of each side's candidates.
    """
    assert corpus.semantic is not None and corpus.vectors is not None
    _, coverage = corpus.index.scores(query_terms)
    cosine = corpus.vectors @ _unit_rows(np.asarray([query_vector], dtype=np.float32))[0]
    hybrid = VECTOR_WEIGHT * np.maximum(cosine, 0.0) + LEXICAL_WEIGHT * coverage
    scores = SEMANTIC_WEIGHT * np.maximum(corpus.semantic @ semantic_query, 0.0) + (1 - SEMANTIC_WEIGHT) * hybrid
    allowed = corpus.allowed(search_filter)
    positions = np.arange(len(corpus.ids)) if allowed is None else np.flatnonzero(allowed)
    passages = []
    for position in positions[np.argsort(-scores[positions], kind="stable")][:k]:
        score = float(scores[position])
        if score < threshold:
            break
        meta = corpus.metadatas[position]
        passages.append(
            to_passage(corpus.ids[position], corpus.documents[position], meta, score, confident=score >= confident_at)
        )
    return passages


def to_passage(chunk_id: str, text: str, meta: dict[str, Any], score: float, *, confident: bool) -> Passage:
    return Passage(
        text=text,
        score=round(score, 4),
        confident=confident,
        source=str(meta.get("source", "")),
        title=str(meta.get("title", "")),
        doc_id=str(meta.get("doc_id", "")),
        chunk_id=chunk_id,
        type=DocType(meta.get("type", DocType.TEXT)),
        category=meta.get("category"),
        page=meta.get("page"),
        answer=meta.get("answer"),
    )


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    rows = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


def _cosine(query: np.ndarray, vector: Any) -> float:
    vec = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(query) * np.linalg.norm(vec))
    return float(query @ vec / norm) if norm else 0.0
