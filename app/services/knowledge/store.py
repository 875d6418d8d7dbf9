"""ChromaDB access: embedded folder or server, one cosine collection per (bot, embedding backend)."""

import hashlib
import re
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from app.config import Settings

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

DEFAULT_PORT = 8000
PAGE = 5000


@dataclass(frozen=True)
class ChromaTarget:
    """Where Chroma lives: a folder (`path`) or a server (`host`, `port`, `ssl`)."""

    path: str | None = None
    host: str | None = None
    port: int = DEFAULT_PORT
    ssl: bool = False


def chroma_target(settings: Settings) -> ChromaTarget:
    """`CHROMA_HOST` as `host`, `host:port` or `http(s)://host[:port]`; else the `CHROMA_PATH` folder."""
    if not settings.chroma_host:
        return ChromaTarget(path=settings.chroma_path)
    raw = settings.chroma_host.strip()
    parts = urlsplit(raw if "://" in raw else f"http://{raw}")
    if not parts.hostname:
        raise ValueError(f"CHROMA_HOST has no host name: {raw!r}")
    ssl = parts.scheme == "https"
    return ChromaTarget(host=parts.hostname, port=parts.port or (443 if ssl else DEFAULT_PORT), ssl=ssl)


def connect(target: ChromaTarget) -> "ClientAPI":
    """A Chroma client with telemetry off; imported here so an API replica that never uses it stays small."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    options = ChromaSettings(anonymized_telemetry=False)
    if target.host:
        return chromadb.HttpClient(host=target.host, port=target.port, ssl=target.ssl, settings=options)
    assert target.path is not None
    Path(target.path).mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=target.path, settings=options)


def collection_name(bot_id: str, embedding: str) -> str:
    """A valid Chroma name (3-512 of [a-zA-Z0-9._-]) that still shows which bot it belongs to."""
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", bot_id).strip("-")[:40] or "bot"
    bot_hash = hashlib.sha1(bot_id.encode()).hexdigest()[:8]
    backend_hash = hashlib.sha1(embedding.encode()).hexdigest()[:6]
    return f"kb-{slug}-{bot_hash}-{backend_hash}"


class VectorStore:
    """Blocking Chroma calls (run them in a thread); the client connects on first use."""

    def __init__(self, settings: Settings) -> None:
        self.target = chroma_target(settings)
        self._client: ClientAPI | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> "ClientAPI":
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = connect(self.target)
        return self._client

    def get(self, bot_id: str, embedding: str) -> "Collection | None":
        """The bot's collection for this backend, if it exists and finished building."""
        from chromadb.errors import NotFoundError

        try:
            collection = self.client.get_collection(collection_name(bot_id, embedding), embedding_function=None)
        except NotFoundError:
            return None
        return collection if (collection.metadata or {}).get("ready") else None

    def create(self, bot_id: str, embedding: str) -> "Collection":
        """A new empty collection marked not ready, replacing a half-built one."""
        from chromadb.errors import NotFoundError

        name = collection_name(bot_id, embedding)
        try:
            self.client.delete_collection(name)
        except NotFoundError:
            pass
        return self.client.create_collection(
            name,
            metadata={"bot_id": bot_id, "embedding": embedding, "ready": False, "revision": _revision()},
            configuration={"hnsw": {"space": "cosine"}},
            embedding_function=None,
        )

    def others(self, bot_id: str, embedding: str) -> list["Collection"]:
        """Finished collections of this bot built with another backend (to re-index from)."""
        found = []
        for collection in self.client.list_collections():
            meta = collection.metadata or {}
            if meta.get("bot_id") == bot_id and meta.get("embedding") != embedding and meta.get("ready"):
                found.append(collection)
        return found

    def fresh(self, collection: "Collection") -> "Collection":
        """The collection as stored now (its metadata as other processes last wrote it)."""
        return self.client.get_collection(collection.name, embedding_function=None)

    def drop(self, name: str) -> None:
        self.client.delete_collection(name)

    @staticmethod
    def touch(collection: "Collection", **changes: Any) -> None:
        """Record a change (a new revision) so other processes reload their lexical index."""
        metadata = dict(collection.metadata or {})
        metadata.update(changes, revision=_revision())
        collection.modify(metadata=metadata)

    @staticmethod
    def read_all(collection: "Collection", *, embeddings: bool = False) -> dict[str, list[Any]]:
        """Every chunk's id, document and metadata (and embedding if asked), page by page."""
        include: list[Any] = ["documents", "metadatas", *(["embeddings"] if embeddings else [])]
        result: dict[str, list[Any]] = {"ids": [], **{key: [] for key in include}}
        offset = 0
        while True:
            page = collection.get(limit=PAGE, offset=offset, include=include)
            for key, values in result.items():
                found = page[key]
                values.extend(found if found is not None else [])
            if len(page["ids"]) < PAGE:
                return result
            offset += PAGE


def _revision() -> str:
    return uuid.uuid4().hex
