"""Markdown stripping and bubble splitting of LLM answers."""

import pytest

from app.kakao.format import CUT_MARKER, format_answer, split_bubbles, strip_markdown


@pytest.mark.parametrize(
    ("markdown", "plain"),
    [
        ("# 제목\n본문", "제목\n본문"),
        ("### 소제목 ###", "소제목"),
        ("#해시태그는 그대로", "#해시태그는 그대로"),
        ("**굵게** 와 __굵게__", "굵게 와 굵게"),
        ("*기울임* 과 _기울임_", "기울임 과 기울임"),
        ("이것은**중요**합니다", "이것은중요합니다"),
        ("***둘 다***", "둘 다"),
        ("~~취소선~~", "취소선"),
        ("snake_case_name 과 2*3*4", "snake_case_name 과 2*3*4"),
        ("별표 * 하나", "별표 * 하나"),
        ("인라인 `a_b*c*` 코드", "인라인 a_b*c* 코드"),
        ("```python\nx = a_b * 2  # **no**\n```", "x = a_b * 2  # **no**"),
        ("```\n닫히지 않은 코드", "닫히지 않은 코드"),
        ("> 인용\n>> 중첩", "인용\n중첩"),
        ("- 하나\n* 둘\n+ 셋\n  - 하위", "• 하나\n• 둘\n• 셋\n  • 하위"),
        ("1. 첫째\n2. 둘째", "1. 첫째\n2. 둘째"),
        ("위\n\n---\n\n아래", "위\n\n아래"),
        ("| 이름 | 값 |\n|---|:---:|\n| a | 1 |", "이름 | 값\na | 1"),
        ("하나\n\n\n\n\n둘", "하나\n\n둘"),
        ("줄 끝 공백   \n다음", "줄 끝 공백\n다음"),
        ("\\*별표\\* 그대로", "*별표* 그대로"),
        ("", ""),
    ],
)
def test_strip_markdown(markdown: str, plain: str) -> None:
    assert strip_markdown(markdown) == plain


@pytest.mark.parametrize(
    ("markdown", "plain"),
    [
        ("[카카오 문서](https://kakao.com/a_b)", "카카오 문서 (https://kakao.com/a_b)"),
        ("![지도](https://img.example.com/map_1.png)", "지도 (https://img.example.com/map_1.png)"),
        ("[](https://x.com/a_b)", "https://x.com/a_b"),
        ("[https://x.com](https://x.com)", "https://x.com"),
        ("<https://auto.example.com/x_y_z>", "https://auto.example.com/x_y_z"),
        ("**https://bold.example.com/a_b**", "https://bold.example.com/a_b"),
        ("[위키](https://en.wikipedia.org/wiki/Foo_(bar))", "위키 (https://en.wikipedia.org/wiki/Foo_(bar))"),
        ("(https://en.wikipedia.org/wiki/Foo_(bar)) 참고", "(https://en.wikipedia.org/wiki/Foo_(bar)) 참고"),
        ("https://x.com/a_b_c?q=*y*&z=__w__ 끝.", "https://x.com/a_b_c?q=*y*&z=__w__ 끝."),
        ("주소는 https://x.com/_private_/page_ 입니다.", "주소는 https://x.com/_private_/page_ 입니다."),
        ("문서: https://x.com/snake_case.", "문서: https://x.com/snake_case."),
    ],
)
def test_urls_survive_intact(markdown: str, plain: str) -> None:
    assert strip_markdown(markdown) == plain


def korean_text(length: int) -> str:
    """Paragraphs of Korean sentences, about `length` characters."""
    sentences = [
        "전세 계약을 할 때는 등기부등본을 꼭 확인하세요.",
        "보증보험 가입이 가능한지도 알아보는 것이 좋아요.",
        "궁금한 점이 있나요?",
    ]
    paragraphs: list[str] = []
    while sum(len(p) + 2 for p in paragraphs) < length:
        paragraphs.append(" ".join(sentences[(len(paragraphs) + i) % 3] for i in range(7)))
    return "\n\n".join(paragraphs)


def test_long_korean_text_fits_three_bubbles_with_cut_marker() -> None:
    source = korean_text(3500)

    bubbles = split_bubbles(source)

    assert len(source) >= 3500
    assert len(bubbles) == 3
    assert all(0 < len(bubble) <= 1000 for bubble in bubbles)
    assert bubbles[-1].endswith(CUT_MARKER)
    assert all(not bubble.endswith(CUT_MARKER) for bubble in bubbles[:-1])


def test_text_that_fits_is_not_marked() -> None:
    source = korean_text(1800)

    bubbles = split_bubbles(source)

    assert 2 <= len(bubbles) <= 3
    assert not any(CUT_MARKER in bubble for bubble in bubbles)
    assert "\n\n".join(bubbles).replace(" ", "").replace("\n", "") == source.replace(" ", "").replace("\n", "")


def test_paragraph_boundaries_are_preferred() -> None:
    first, second = "가" * 600 + ".", "나" * 500 + "."

    assert split_bubbles(f"{first}\n\n{second}") == [first, second]


def test_paragraphs_are_packed_together_when_they_fit() -> None:
    assert split_bubbles("첫 문단입니다.\n\n둘째 문단이에요.") == ["첫 문단입니다.\n\n둘째 문단이에요."]


def test_long_paragraph_splits_at_sentence_ends() -> None:
    sentence = "가" * 299 + "다."
    bubbles = split_bubbles(" ".join([sentence] * 5))

    assert [len(b) for b in bubbles] == [905, 603]
    assert all(bubble.endswith("다.") for bubble in bubbles)


def test_text_without_boundaries_is_hard_cut() -> None:
    bubbles = split_bubbles("가" * 2500)

    assert [len(b) for b in bubbles] == [1000, 1000, 500]


def test_hard_cut_prefers_spaces() -> None:
    bubbles = split_bubbles("단어 " * 600)

    assert all(bubble.endswith("단어") for bubble in bubbles)
    assert all(len(bubble) <= 1000 for bubble in bubbles)


def test_custom_limits_are_respected() -> None:
    bubbles = split_bubbles(korean_text(500), max_bubbles=2, max_chars=120)

    assert len(bubbles) == 2
    assert all(len(bubble) <= 120 for bubble in bubbles)
    assert bubbles[-1].endswith(CUT_MARKER)


@pytest.mark.parametrize("empty", ["", "   ", "\n\n\t"])
def test_empty_text_gives_no_bubbles(empty: str) -> None:
    assert split_bubbles(empty) == []
    assert format_answer(empty) == []


def test_format_answer_strips_then_splits() -> None:
    bubbles = format_answer("## 요약\n\n- **첫째**: [링크](https://x.com/a_b)\n\n" + "긴 설명입니다. " * 200)

    assert bubbles[0].startswith("요약\n\n• 첫째: 링크 (https://x.com/a_b)")
    assert all(len(bubble) <= 1000 for bubble in bubbles)
    assert "**" not in "".join(bubbles)
