"""BM25: rare shared words rank first; coverage is 1 for a full match and low for unseen words."""

import numpy as np

from app.services.knowledge.lexical import BM25Index


def test_rare_terms_rank_and_coverage() -> None:
    index = BM25Index([["배송", "기간"], ["배송", "비용"], ["환불", "기간"]])
    raw, coverage = index.scores(["배송", "비용"])
    assert index.top(raw, 3) == [1, 0]
    assert coverage[1] == 1.0
    assert 0 < coverage[0] < 0.5
    raw, coverage = index.scores(["주식", "배송"])
    assert coverage.max() < 0.3  # "주식" is unknown to the corpus and counts against the match


def test_filter_mask_and_empty_index() -> None:
    index = BM25Index([["배송"], ["배송"]])
    raw, _ = index.scores(["배송"])
    assert index.top(raw, 5, np.array([False, True])) == [1]
    empty = BM25Index([])
    assert empty.top(empty.scores(["배송"])[0], 5) == []
