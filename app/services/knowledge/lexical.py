"""BM25 over content morphemes, as compact numpy postings; rebuilt whole when a bot's chunks change."""

import math
from collections import Counter
from collections.abc import Mapping

import numpy as np

K1 = 1.2
B = 0.75


class BM25Index:
    """Okapi BM25 with scores also given as idf-weighted query coverage in [0, 1]."""

    def __init__(self, docs: list[list[str]]) -> None:
        self.size = len(docs)
        self.vocab: dict[str, int] = {}
        rows: list[tuple[int, int, int]] = []
        for doc_index, terms in enumerate(docs):
            for term, tf in Counter(terms).items():
                rows.append((self.vocab.setdefault(term, len(self.vocab)), doc_index, tf))
        table = np.array(rows, dtype=np.int64).reshape(-1, 3)
        table = table[np.argsort(table[:, 0], kind="stable")]
        self._docs = table[:, 1].astype(np.int32)
        self._tfs = table[:, 2].astype(np.float32)
        df = np.bincount(table[:, 0], minlength=len(self.vocab))
        self._offsets = np.concatenate([[0], np.cumsum(df)])
        self._idf = np.log1p((self.size - df + 0.5) / (df + 0.5)).astype(np.float32)
        lengths = np.array([len(d) for d in docs], dtype=np.float32)
        avg = float(lengths.mean()) if self.size else 1.0
        self._norm = K1 * (1 - B + B * lengths / max(avg, 1.0))

    def scores(self, query_terms: list[str] | Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """Raw BM25 per document, and the same divided by the query's idf mass and capped at 1.

        A document holding every query term once at average length scores 1; terms unseen in the
        corpus count at full idf, so a query about something absent stays low. Weighted terms
        (expansions) count their weight times their idf, in the score and in the mass alike.
        """
        weights = query_terms if isinstance(query_terms, Mapping) else dict.fromkeys(query_terms, 1.0)
        raw = np.zeros(self.size, dtype=np.float32)
        mass = 0.0
        unseen_idf = math.log1p((self.size + 0.5) / 0.5)
        for term, weight in weights.items():
            term_id = self.vocab.get(term)
            if term_id is None:
                mass += weight * unseen_idf
                continue
            start, end = self._offsets[term_id], self._offsets[term_id + 1]
            docs, tfs = self._docs[start:end], self._tfs[start:end]
            idf = weight * self._idf[term_id]
            mass += float(idf)
            raw[docs] += idf * tfs * (K1 + 1) / (tfs + self._norm[docs])
        normalised = np.minimum(raw / mass, 1.0) if mass else raw
        return raw, normalised

    def top(self, raw: np.ndarray, n: int, allowed: np.ndarray | None = None) -> list[int]:
        """Indexes of the `n` best documents with a positive score, best first."""
        scored = raw if allowed is None else np.where(allowed, raw, 0.0)
        n = min(n, int(np.count_nonzero(scored)))
        if n <= 0:
            return []
        best = np.argpartition(-scored, n - 1)[:n]
        return [int(i) for i in best[np.argsort(-scored[best], kind="stable")]]
