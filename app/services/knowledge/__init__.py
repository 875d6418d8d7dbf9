"""Knowledge base (RAG): documents in Chroma and SQL, hybrid Korean retrieval, offline answers.

The answer pipeline needs only `KnowledgeBase.retrieve`, `KnowledgeBase.offline_answer` and
`format_context`; everything heavy loads on first use.
"""

from app.services.knowledge.base import KnowledgeBase
from app.services.knowledge.context import format_context, sources_json
from app.services.knowledge.schemas import OfflineAnswer, Passage, SearchFilter

__all__ = ["KnowledgeBase", "OfflineAnswer", "Passage", "SearchFilter", "format_context", "sources_json"]
