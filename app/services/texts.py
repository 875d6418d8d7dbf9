"""User-facing Korean texts of the skill endpoint, in one place."""

CHECK_ANSWER = "답변 확인"

PREPARING = "답변을 준비하고 있어요. 잠시 후 아래 '답변 확인'을 눌러 주세요."
OVERLOADED = (
    "지금 질문이 많이 몰려 답변이 평소보다 늦어지고 있어요. 질문은 잘 받았어요. "
    "잠시 후 아래 '답변 확인'을 누르시거나 다시 말씀하시면 답변을 드릴게요."
)
STILL_WORKING = "아직 답변을 준비하고 있어요. 잠시 후 다시 '답변 확인'을 눌러 주세요."
NOTHING_PENDING = "지금은 확인할 답변이 없어요. 궁금한 점을 편하게 물어봐 주세요."
LATE_ANSWER_PREFIX = "이전 질문에 대한 답변이에요:\n"
CANNOT_STORE = "죄송해요, 지금은 메시지를 처리할 수 없어요. 잠시 후 다시 말씀해 주세요."
TOO_LONG = "메시지가 너무 길어요. {limit}자 이내로 나누어 보내 주세요."
EMPTY_UTTERANCE = "메시지가 비어 있어요. 궁금한 점을 입력해 주세요."
WELCOME_NAMED = "안녕하세요, {name}님! 다시 만나 반가워요. 무엇을 도와드릴까요?"
WELCOME = "안녕하세요! 무엇을 도와드릴까요? 이름을 알려 주시면 기억해 둘게요. (예: /이름 홍길동)"

CANCEL = "취소"
NAME_ASK = "불러 드릴 이름을 알려 주세요. (20자 이내, 한글·영문·숫자) 그만두려면 '취소'라고 보내 주세요."
NAME_SET = "반가워요, {name}님! 앞으로 {name}님이라고 부를게요."
NAME_CANCELLED = "이름 설정을 취소했어요."
NOTHING_TO_CANCEL = "취소할 작업이 없어요. 궁금한 점을 편하게 물어봐 주세요."

# Usage budgets: a refused message (no model call) says when the month's budget resets.
USAGE_RESET_AT = "{month}월 {day}일 0시"
USAGE_USER_LIMIT = "이번 달 이용 한도를 모두 사용하셨어요. {reset}에 다시 이용하실 수 있어요. 이용해 주셔서 감사해요!"
USAGE_BOT_LIMIT = "이번 달 준비된 답변 용량이 모두 소진되었어요. {reset}에 다시 이용하실 수 있어요. 양해 부탁드려요."
USAGE_NON_FRIEND_LIMIT = (
    "채널 추가 전 이용 한도를 모두 사용하셨어요. 채널을 추가해 주시면 계속 이용하실 수 있어요. "
    "(한도는 {reset}에 초기화돼요)"
)
USAGE_NOTICE = "※ 이번 달 이용 한도의 {percent}%를 사용하셨어요."
USAGE_NOTICE_SPENT = "※ 이번 달 이용 한도를 모두 사용하셨어요. 한도는 {reset}에 초기화돼요."
