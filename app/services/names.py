"""User names: find a name a user states about themselves, and check a name before storing it.

Regular expressions find the sentence shapes that introduce oneself; kiwipiepy (loaded lazily, about
300 MB) settles the ambiguous "난 X야" shape, where X may be a name or an ordinary noun ("난 학생이야").
"""

import re
import unicodedata
from collections.abc import Callable

from app.services.kiwi import shared_kiwi

MAX_NAME_CHARS = 20
# Longer texts are not self-introductions; the bound also keeps analysis cheap.
MAX_SENTENCE_CHARS = 100
# How far (log-probability) a proper-noun reading may trail the best analysis and still count.
NAME_READING_MARGIN = 4.0

_VALID_NAME = re.compile(r"[0-9A-Za-z가-힣·_\-]+")
_GREETING = r"(?:안녕하세요|안녕|반가워요|반갑습니다|처음 뵙겠습니다|하이|hi|hello|hey)"
_SELF = r"(?:저는|나는|난|전|저|나|본인은)"
_CALL_PREFIX = r"(?:저는|나는|난|전|저|나|저를|나를|날|절|그냥|앞으로|편하게)"
# Copula and quotation endings, longest first. Forms starting with 이 follow a final consonant
# ("소연이야"); after a vowel the 이 belongs to the name ("하이예요" -> 하이).
_ENDINGS = (
    "이랍니다", "이라고", "이라구", "이에요", "이예요", "입니다", "랍니다",
    "라고", "라구", "예요", "에요", "이야", "이다", "이고", "야", "임",
)  # fmt: skip
_ENDING_RE = "|".join(_ENDINGS)

_EXPLICIT = re.compile(
    rf"^(?:{_GREETING}\s+)?(?:{_SELF}\s+)?(?:(?:내|제|나의|저의)\s*이름(?:은|는|이|:)?|이름(?:은|는|이|:))\s+(?P<rest>.+)$"
)
_CALLED = re.compile(
    rf"^(?:{_GREETING}\s+)?(?:{_CALL_PREFIX}\s+)*(?P<word>\S+?)(?:이)?라[고구]\s*"
    r"(?:해|합니다|하고|하구|불러|부르|부를|불러도)"
)
_INTRO = re.compile(rf"^(?:{_GREETING}\s+)?{_SELF}\s+(?P<word>\S+?(?:{_ENDING_RE}))$")
_MY_NAME_IS = re.compile(r"\bmy name(?:'s| is)\s+(?P<name>[^\s,.!?]+)(?P<rest>.*)$", re.IGNORECASE)
_CALL_ME = re.compile(r"\bcall me\s+(?P<name>[A-Z][A-Za-z\-]*|[가-힣]+)\s*$")
# The name must be capitalised: "I'm hungry" is not an introduction, "I'm Yeonwoo" is.
_I_AM = re.compile(r"^(?i:(?:(?:hi|hello|hey)\s+)?(?:i'm|i am|im))\s+(?P<name>[A-Z][a-z\-]+|[가-힣]+)$")
_LATIN_NAME = re.compile(r"[A-Z][a-z]+(?:-[A-Za-z]+)?")
_CLAUSE_SPLIT = re.compile(r"[.!?~,;\n]+")
_TRAILING_NOISE = re.compile(r"(?:\s*(?:[ㅋㅎㅠㅜ]+|\^\^|:\)|[~♡♥]+))+$")

# Words that fill a name's slot without being one ("제 이름은 비밀이에요", "뭐라고 해요?").
_NOT_NAMES = {
    "뭐", "뭔", "무엇", "누구", "비밀", "아니", "모름", "몰라", "없음", "없어", "그거", "이거", "저거",
    "여기", "거기", "어떻게", "왜", "진짜", "정말", "그냥", "네", "예", "응", "아직", "고객", "손님",
    "what", "not", "secret", "unknown", "none", "nobody", "later", "back", "now", "tomorrow", "maybe",
    "korean", "american", "fine", "ok", "okay", "good", "great", "here", "sorry", "hungry", "ready",
    "sure", "busy", "tired", "happy", "from", "a", "an", "the", "just", "so", "very", "in", "at",
}  # fmt: skip
# Proper nouns that follow "난/저는" as places or groups rather than names ("나는 부산이야").
_NOT_PERSONS = {
    "서울", "부산", "대구", "인천", "광주", "대전", "울산", "세종", "제주", "경기", "강원", "충청", "전라",
    "경상", "수원", "고양", "용인", "성남", "부천", "안산", "안양", "청주", "천안", "전주", "포항", "창원",
    "김해", "한국", "미국", "일본", "중국", "영국", "독일", "프랑스", "캐나다", "호주", "베트남",
}  # fmt: skip


Rule = Callable[[str, re.Match[str]], str | None]


class InvalidName(ValueError):
    """A name that cannot be stored; the message is shown to the user as it is."""


def validate_name(name: str) -> str:
    """The name trimmed, or `InvalidName` with a Korean message saying what to fix."""
    name = unicodedata.normalize("NFC", name).strip()
    if not name:
        raise InvalidName("이름이 비어 있어요. 불러 드릴 이름을 알려 주세요.")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidName(f"이름은 {MAX_NAME_CHARS}자 이내로 알려 주세요.")
    if not _VALID_NAME.fullmatch(name):
        raise InvalidName("이름에는 한글, 영문, 숫자와 · - _ 만 쓸 수 있어요. 띄어쓰기 없이 알려 주세요.")
    return name


def mentions_name(sentence: str) -> bool:
    """Cheap check (no analyser) whether `sentence` may state a name; False means `extract_name` is None."""
    return any(_match(clause) for clause in _clauses(sentence))


def extract_name(sentence: str) -> str | None:
    """The user's own name stated in `sentence` ("내 이름은 민수야" -> "민수"), or None.

    May load kiwipiepy on first use (a second or two); call it off the event loop.
    """
    for clause in _clauses(sentence):
        found = _match(clause)
        if found is None:
            continue
        rule, match = found
        name = rule(clause, match)
        if name is not None:
            return name
    return None


def _clauses(sentence: str) -> list[str]:
    text = " ".join(unicodedata.normalize("NFC", sentence).split())
    if not text or len(text) > MAX_SENTENCE_CHARS or text.startswith("/"):
        return []
    clauses = (_TRAILING_NOISE.sub("", c).strip() for c in _CLAUSE_SPLIT.split(text))
    return [c for c in clauses if c]


def _match(clause: str) -> tuple[Rule, re.Match[str]] | None:
    for pattern, rule in _RULES:
        match = pattern.search(clause)
        if match:
            return rule, match
    return None


def _explicit(clause: str, match: re.Match[str]) -> str | None:
    """'제 이름은 X(이에요)': the cue says it is a name, so any noun will do."""
    words = match.group("rest").split()
    # A surname written apart ("김 철수예요") joins the given name.
    if len(words) > 1 and len(words[0]) == 1 and "가" <= words[0] <= "힣":
        words = [words[0] + words[1], *words[2:]]
    word = words[0]
    name = _strip_ending(word)
    if name == word and not _reads_as(clause, match.start("rest"), name, {"NNP", "NNG", "SL", "SH"}):
        return None  # no copula and not a noun: "내 이름이 이상해"
    return _accept(name)


def _called(clause: str, match: re.Match[str]) -> str | None:
    """'X라고 해요', 'X라고 불러 줘'."""
    word = match.group("word")
    end = match.end("word")
    # The optional 이 belongs to the name after a vowel ("하이라고"), to the ending after a consonant.
    if clause[end : end + 1] == "이" and _ends_in_vowel(word):
        word += "이"
    return _accept(word)


def _intro(clause: str, match: re.Match[str]) -> str | None:
    """'난 X야', '저는 X입니다': a name only if X reads as a proper noun ("저는 학생이에요" is not)."""
    word = match.group("word")
    name = _strip_ending(word)
    if name == word or name in _NOT_PERSONS:
        return None
    # Analysed as "X 씨" (Mr/Ms X): the frame favours a person's name when one fits, and keeps the
    # copula from merging into the word as in the sentence ("지은이에요" -> 지은이/NNG, "author").
    if _LATIN_NAME.fullmatch(name) or _reads_as(f"{name} 씨", 0, name, {"NNP"}):
        return _accept(name)
    return None


def _english(clause: str, match: re.Match[str]) -> str | None:
    name = match.group("name")
    # "my name is important to me": a lower-case word followed by more words is not a name.
    if name[:1].islower() and match.groupdict().get("rest", "").strip():
        return None
    return _accept(name)


_RULES: list[tuple[re.Pattern[str], Rule]] = [
    (_MY_NAME_IS, _english),
    (_CALL_ME, _english),
    (_I_AM, _english),
    (_EXPLICIT, _explicit),
    (_CALLED, _called),
    (_INTRO, _intro),
]


def _accept(candidate: str) -> str | None:
    if candidate.lower() in _NOT_NAMES:
        return None
    try:
        return validate_name(candidate)
    except InvalidName:
        return None


def _ends_in_vowel(word: str) -> bool:
    """Whether the last Hangul syllable has no final consonant (민수: yes, 소연: no, John: no)."""
    return "가" <= word[-1] <= "힣" and (ord(word[-1]) - ord("가")) % 28 == 0


def _strip_ending(word: str) -> str:
    """'소연이야' -> '소연', '민수야' -> '민수', '김철수입니다' -> '김철수'; unchanged without an ending.

    "소연이야" could also be 소연이 + 야; we read the 이 as part of the copula, as Korean spelling does.
    """
    for ending in _ENDINGS:
        if not word.endswith(ending) or len(word) <= len(ending):
            continue
        stem = word[: -len(ending)]
        if ending.startswith("이") and _ends_in_vowel(stem):
            stem += "이"  # after a vowel the copula has no 이: "하이예요" is 하이 + 예요
        return stem
    return word


# --- morphological analysis (lazy) --------------------------------------------------------------------

def _reads_as(text: str, start: int, word: str, tags: set[str]) -> bool:
    """Whether a likely analysis of `text` reads `word` at `start` as one morpheme tagged with one of `tags`."""
    analyses = shared_kiwi().analyze(text, top_n=3)
    best = analyses[0][1]
    return any(
        token.start == start and token.form == word and token.tag in tags
        for tokens, score in analyses
        if best - score <= NAME_READING_MARGIN
        for token in tokens
    )
