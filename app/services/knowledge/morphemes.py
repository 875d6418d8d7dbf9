"""Korean content morphemes from kiwipiepy, loaded on first use (the model is ~280 MB resident)."""

from typing import NamedTuple

from app.services.kiwi import shared_kiwi
from app.services.knowledge.synonyms import expand

# Nouns, roots, verb and adjective stems, adverbs, numbers, foreign words: what carries a topic.
_CONTENT_TAGS = {"NNG", "NNP", "NR", "XR", "VV", "VA", "MAG", "SL", "SH", "SN"}
# Light verbs, request verbs and filler adverbs that appear in nearly every question and blur matching.
_STOP = {
    "하", "되", "있", "이", "것", "어떻", "그렇", "이렇", "알리", "보", "궁금하",
    "좀", "잘", "더", "안", "못", "왜", "다", "또", "꼭", "많이", "너무", "정말", "진짜", "그냥", "혹시",
}
# kiwipiepy holds the GIL while it analyses; small batches let the event loop breathe between calls.
BATCH = 16


class Analysis(NamedTuple):
    """Content morphemes and compounds with their synonyms' canonical words; runs of adjacent morphemes;
    the content morphemes as analysed (form, tag), which query expansion looks up."""

    terms: list[str]
    runs: list[str]
    morphemes: list[tuple[str, str]]


class Morphemes:
    """Content-morpheme analysis on the shared analyser."""

    def analyze(self, texts: list[str]) -> list[Analysis]:
        """Analyse texts (blocking; call from a worker thread)."""
        kiwi = shared_kiwi()
        results: list[Analysis] = []
        for start in range(0, len(texts), BATCH):
            batch = texts[start : start + BATCH]
            tokenized = [kiwi.tokenize(batch[0])] if len(batch) == 1 else kiwi.tokenize(batch)
            results.extend(_analysis(tokens) for tokens in tokenized)
        return results


def _analysis(tokens: list) -> Analysis:  # type: ignore[type-arg]
    terms: list[str] = []
    runs: list[str] = []
    morphemes: list[tuple[str, str]] = []
    run = ""
    run_end = -1
    for token in tokens:
        tag = token.tag.split("-", 1)[0]
        form = token.form.lower()
        if tag not in _CONTENT_TAGS or form in _STOP:
            run, run_end = _close(run, runs), -1
            continue
        terms.append(form)
        morphemes.append((token.form, token.tag))
        if token.start == run_end:
            run += form
        else:
            run = _close(run, runs) + form
        run_end = token.start + token.len
    _close(run, runs)
    # Compounds count as terms too: Kiwi splits 택배비 or 고객센터 in one sentence and not in another.
    compounds = [r for r in runs if r not in terms]
    return Analysis(expand(terms + compounds), runs, morphemes)


def _close(run: str, runs: list[str]) -> str:
    if run:
        runs.append(run)
    return ""
