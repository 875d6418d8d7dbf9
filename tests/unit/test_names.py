"""Name recognition on a labelled sentence set, ending rules, the cheap prefilter and validation."""

import sys
from pathlib import Path

import pytest

from app.services import names
from app.services.names import InvalidName, extract_name, mentions_name, validate_name

DATA = Path(__file__).parent / "fixtures" / "name_sentences.tsv"


def labelled() -> list[tuple[str, str | None]]:
    rows = []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        sentence, _, expected = line.partition("\t")
        rows.append((sentence, expected or None))
    return rows


def test_labelled_set_accuracy(capsys: pytest.CaptureFixture[str]) -> None:
    rows = labelled()
    with_name = sum(1 for _, expected in rows if expected)
    assert len(rows) >= 60 and with_name >= 30 and len(rows) - with_name >= 30
    wrong = [(s, e, got) for s, e in rows if (got := extract_name(s)) != e]
    accuracy = 1 - len(wrong) / len(rows)
    with capsys.disabled():
        print(f"\nname extraction accuracy: {accuracy:.3f} ({len(rows) - len(wrong)}/{len(rows)})", file=sys.stderr)
        for sentence, expected, got in wrong:
            print(f"  miss: {sentence!r} expected={expected!r} got={got!r}", file=sys.stderr)
    assert accuracy >= 0.95


@pytest.mark.parametrize(
    ("word", "stem"),
    [
        ("민수야", "민수"),
        ("영희야", "영희"),
        ("소연이야", "소연"),
        ("지은이에요", "지은"),
        ("민지예요", "민지"),
        ("하이예요", "하이"),
        ("김철수입니다", "김철수"),
        ("홍길동이에요", "홍길동"),
        ("길동이라고", "길동"),
        ("철수라고", "철수"),
        ("John이에요", "John"),
        ("Yeonwoo예요", "Yeonwoo"),
        ("민수", "민수"),
        ("야", "야"),
    ],
)
def test_strip_ending(word: str, stem: str) -> None:
    assert names._strip_ending(word) == stem


def test_prefilter_skips_ordinary_sentences_without_the_analyser(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> None:
        raise AssertionError("analyser loaded for an ordinary sentence")

    monkeypatch.setattr(names, "shared_kiwi", refuse)
    for sentence in ["난 배고파", "난 괜찮아", "배송은 언제 와요?", "저는 서울에 살아요", "x" * 500, "", "/이름 민수"]:
        assert not mentions_name(sentence)
        assert extract_name(sentence) is None
    # Explicit cues with a copula need no analyser either.
    assert extract_name("제 이름은 김철수입니다") == "김철수"
    assert extract_name("my name is Yeonwoo") == "Yeonwoo"
    assert mentions_name("난 영희야")


def test_nfd_input_is_normalised() -> None:
    import unicodedata

    assert extract_name(unicodedata.normalize("NFD", "내 이름은 민수야")) == "민수"


@pytest.mark.parametrize("name", ["민수", " 홍길동 ", "Yeonwoo", "J-Hope", "김·철수", "user_01", "가" * 20])
def test_validate_name_accepts(name: str) -> None:
    assert validate_name(name) == name.strip()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "비어"),
        ("   ", "비어"),
        ("가" * 21, "20자"),
        ("김 철수", "한글, 영문, 숫자"),
        ("민수!", "한글, 영문, 숫자"),
        ("ㅋㅋ", "한글, 영문, 숫자"),
        ("<b>", "한글, 영문, 숫자"),
    ],
)
def test_validate_name_rejects_with_korean_message(name: str, message: str) -> None:
    with pytest.raises(InvalidName, match=message):
        validate_name(name)


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("저는 John이라고 해요", "John"),
        ("하이라고 불러 줘", "하이"),
        ("제 이름은 민수라고 해요", "민수"),
        ("이름 변경", None),
        ("내 이름이 이상해", None),
    ],
)
def test_edge_cases(sentence: str, expected: str | None) -> None:
    assert extract_name(sentence) == expected
