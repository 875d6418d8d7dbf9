"""Everyday customer-service Korean mapped to the words businesses write in FAQs and manuals.

Users write 비번, 택배비, 포인트, 리뷰; documents say 비밀번호, 배송비, 적립금, 후기. Each group's
first word is added next to any variant (on both documents and queries), so either side matches.
A variant of two morphemes (돌리 보내 = 돌려보내다) matches them side by side.
"""

from itertools import pairwise

GROUPS: tuple[tuple[str, ...], ...] = (
    ("배송", "택배", "배달", "도착", "운송"),
    ("배송비", "택배비", "배달비", "배송료", "운송료"),
    ("배송지", "주소"),
    ("반품", "반송", "돌리 보내", "되돌리 보내"),
    ("환불", "환급", "돌리 받", "되돌리 받"),
    ("교환", "맞교환"),
    ("변경", "바꾸", "수정", "고치"),
    ("취소", "철회", "캔슬"),
    ("불량", "하자", "파손", "고장", "결함", "구멍", "흠집", "얼룩", "찢어지", "깨지", "망가지"),
    ("할인", "세일", "특가", "디씨"),
    ("비밀번호", "비번", "패스워드", "암호"),
    ("아이디", "계정", "id"),
    ("탈퇴", "해지", "계정 삭제", "회원 삭제"),
    ("잊", "까먹", "생각 나", "기억 나"),
    ("광고", "홍보", "마케팅", "스팸", "프로모션"),
    ("문자", "메시지", "메세지", "sms"),
    ("거부", "거절", "차단", "중단", "그만"),
    ("적립금", "포인트", "마일리지", "리워드"),
    ("쿠폰", "할인권", "바우처"),
    ("후기", "리뷰", "상품평", "구매평", "평점"),
    ("세탁", "빨래", "빨", "세척"),
    ("매장", "가게", "지점", "점포", "스토어", "오프라인"),
    ("영업", "운영", "오픈", "마감", "문 열", "문 닫"),
    ("상담원", "상담사", "직원", "사람", "매니저"),
    ("고객센터", "콜센터", "상담센터"),
    ("통화", "전화", "콜"),
    ("해외", "외국", "국외", "미국", "일본", "중국", "캐나다", "호주", "유럽", "베트남"),
    ("구매", "구입", "사"),
    ("결제", "지불", "계산", "페이"),
    ("입금", "송금", "이체"),
    ("입고", "재입고", "들어오"),
    ("품절", "매진", "솔드아웃"),
    ("사이즈", "치수", "크기", "호수"),
    ("선물", "기프트"),
    ("대량", "단체", "도매"),
    ("기업", "회사", "법인"),
    ("입점", "제휴", "협업", "파트너", "납품"),
    ("문의", "연락", "질문"),
    ("휴대폰", "핸드폰", "휴대전화", "폰", "전화번호"),
    ("조회", "추적"),
)


def _tables() -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    single: dict[str, str] = {}
    pairs: dict[tuple[str, str], str] = {}
    for canonical, *variants in GROUPS:
        for variant in variants:
            words = variant.split()
            if len(words) == 2:
                pairs[(words[0], words[1])] = canonical
            else:
                single[variant] = canonical
    return single, pairs


_SINGLE, _PAIRS = _tables()


def expand(terms: list[str]) -> list[str]:
    """The terms plus the canonical word of each variant found (single morphemes or adjacent pairs)."""
    extra = [_SINGLE[t] for t in terms if t in _SINGLE]
    extra += [_PAIRS[pair] for pair in pairwise(terms) if pair in _PAIRS]
    return terms + extra
