"""Query expansion from kiwipiepy's CoNg morpheme embeddings: words like the user's that the documents use.

The shared analyser is the CoNg model (kiwipiepy's default), so this loads nothing more. Users write 택배,
며칠, 해약; FAQs say 배송, 일주일, 해지. Each query morpheme adds its nearest morphemes that occur in the
bot's chunks, weighted below the user's own words. The limits were chosen on the dev split of
`bench/rag_eval` (see docs/knowledge.md).
"""

import sys
from collections.abc import Collection, Mapping
from functools import lru_cache

from app.services.kiwi import shared_kiwi

# Neighbours looked at per morpheme; only those the bot's chunks contain are kept.
NEIGHBOURS = 50
# Below this cosine, CoNg neighbours are mostly topical noise (기다리 -> 앉, 조용히).
MIN_SIMILARITY = 0.6
# An expansion counts this much of a word the user wrote (times its similarity).
WEIGHT = 0.5


def expand(
    terms: list[str], morphemes: list[tuple[str, str]], vocabulary: Collection[str]
) -> Mapping[str, float]:
    """The query's own terms at weight 1, plus vocabulary words near its morphemes (blocking)."""
    weights = dict.fromkeys(terms, 1.0)
    for form, tag in morphemes:
        for neighbour, similarity in neighbours(form, tag):
            if neighbour in vocabulary and neighbour not in weights:
                weights[neighbour] = WEIGHT * similarity
    return weights


# Entries hold only neighbours above MIN_SIMILARITY, with interned forms: a few MB in practice.
@lru_cache(maxsize=10_000)
def neighbours(form: str, tag: str) -> tuple[tuple[str, float], ...]:
    """The morpheme's near morphemes by CoNg embedding, best first; cached (a lookup costs a few ms)."""
    try:
        found = shared_kiwi().most_similar_morphemes((form, tag), top_n=NEIGHBOURS)
    except ValueError:
        return ()  # a morpheme the model has no embedding for (new words, some foreign words)
    return tuple((sys.intern(m.form.lower()), float(m.score)) for m in found if m.score >= MIN_SIMILARITY)
