"""Embedding backends: local hashed features (no network, no model download) or OpenAI."""

import asyncio
import math
import time
import zlib
from collections import Counter
from typing import Protocol

import httpx
import numpy as np
import openai

from app.config import Settings
from app.services import usage
from app.services.knowledge.morphemes import Analysis
from app.services.llm import classify
from app.services.tokens import count_tokens

LOCAL_DIM = 1024
_GRAM_WEIGHT = 0.5


class Embedder(Protocol):
    """Turns texts into vectors; `name` is recorded per collection so vectors are never mixed."""

    name: str

    async def embed(self, texts: list[str], analyses: list[Analysis]) -> list[list[float]]: ...


class LocalEmbedder:
    """Signed feature hashing of morphemes, compounds and their character n-grams, L2-normalised.

    Character n-grams of compounds let 배송비 meet 배송 and 회원가입 meet 가입 without a dictionary.
    """

    name = f"local-hash{LOCAL_DIM}-v1"

    async def embed(self, texts: list[str], analyses: list[Analysis]) -> list[list[float]]:
        return await asyncio.to_thread(lambda: [self.vector(a).tolist() for a in analyses])

    @staticmethod
    def vector(analysis: Analysis) -> np.ndarray:
        features: Counter[str] = Counter()
        for term in analysis.terms:
            features["t:" + term] += 1.0
        for run in analysis.runs:
            for n in (2, 3):
                for i in range(len(run) - n + 1):
                    features["g:" + run[i : i + n]] += _GRAM_WEIGHT
        vec = np.zeros(LOCAL_DIM, dtype=np.float32)
        for feature, count in features.items():
            h = zlib.crc32(feature.encode())
            # Sublinear counts: a word repeated ten times is not ten times the topic.
            weight = (1.0 + math.log(count)) if count >= 1 else count
            vec[h % LOCAL_DIM] += weight if h & 0x80000000 else -weight
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm else vec


class OpenAIEmbedder:
    """`EMBEDDING_MODEL` through the OpenAI API (or `OPENAI_BASE_URL`), in batches."""

    def __init__(self, settings: Settings) -> None:
        self.model = settings.embedding_model
        self.name = f"openai-{self.model}"
        self.batch_size = settings.embedding_batch_size
        # The standard httpx client, as in LLMClient: one HTTP stack, and respx can mock it in tests.
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0))
        self._client = openai.AsyncOpenAI(
            api_key=settings.openai_api_key, base_url=settings.openai_base_url, max_retries=2, http_client=self._http
        )

    async def embed(self, texts: list[str], analyses: list[Analysis]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            try:
                started = time.perf_counter()
                response = await self._client.embeddings.create(model=self.model, input=batch)
            except openai.APIError as exc:
                raise classify(exc) from exc
            tokens = response.usage.prompt_tokens if response.usage else sum(map(count_tokens, batch))
            latency_ms = round((time.perf_counter() - started) * 1000)
            usage.note(usage.ModelCall(usage.Kind.EMBEDDING, response.model or self.model, tokens, 0, latency_ms))
            vectors.extend(item.embedding for item in sorted(response.data, key=lambda d: d.index))
        return vectors

    async def aclose(self) -> None:
        await self._client.close()
        await self._http.aclose()


def backend(settings: Settings) -> str:
    """`local` or `openai`: what `EMBEDDING_BACKEND` asks for, `auto` meaning OpenAI when a key is set."""
    if settings.embedding_backend == "auto":
        return "openai" if settings.openai_api_key else "local"
    return settings.embedding_backend


def build_embedder(settings: Settings) -> LocalEmbedder | OpenAIEmbedder:
    """The embedder of the configured backend."""
    return OpenAIEmbedder(settings) if backend(settings) == "openai" else LocalEmbedder()


async def close_embedder(embedder: Embedder) -> None:
    if isinstance(embedder, OpenAIEmbedder):
        await embedder.aclose()
