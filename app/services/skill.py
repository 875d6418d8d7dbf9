"""One Kakao utterance: store it and enqueue its task in one transaction, then shape the reply."""

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from loguru import logger

from app.config import Settings
from app.db import Database
from app.kakao import SkillResponse, callback_ack, redact_callback_url, text_reply
from app.kakao.payload import SkillPayload
from app.models import Role
from app.queue import Wakeup, enqueue, take_pending_answers
from app.queue.backlog import BacklogGauge
from app.queue.intake import Intake, store_and_enqueue
from app.services import texts
from app.services.answers import late_answer_reply, wait_for_answer
from app.services.callback_policy import callback_problem
from app.services.commands import COMMANDS, CommandContext, name_mode_reply
from app.services.conversations import add_message, current_conversation
from app.services.users import find_user, touch_user

# Kakao waits 5 s; everything we do must be done well before that.
REPLY_BUDGET_SECONDS = 4.5


@dataclass(frozen=True, slots=True)
class Enqueued:
    """A stored message whose task is queued."""

    task_id: uuid.UUID
    use_callback: bool
    late_answers: list[str]
    overloaded: bool = False  # the callback could not be kept: the reply says the answer comes later


@dataclass(frozen=True, slots=True)
class SkillService:
    """Handles skill requests with the process's settings, database and worker wake-up."""

    settings: Settings
    db: Database
    wakeup: Wakeup
    backlog: BacklogGauge = field(init=False)

    def __post_init__(self) -> None:
        window = self.settings.callback_deadline_seconds
        gauge = BacklogGauge(
            self.db.engine, window_seconds=window, answerable_within=window - self.settings.apology_margin_seconds
        )
        object.__setattr__(self, "backlog", gauge)  # one per service: the cache is shared by its requests

    def callback_problem(self, url: str) -> str | None:
        """Why `url` may not receive a callback, or None when it passes the allow-list."""
        return callback_problem(url, self.settings)

    def trusted_callback(self, payload: SkillPayload) -> str | None:
        """The request's callback URL if it passes the allow-list; untrusted ones are never contacted."""
        url = payload.requested_callback_url
        if not url:
            return None
        reason = self.callback_problem(url)
        if reason:
            logger.warning("Ignoring untrusted callbackUrl ({}): {}", reason, redact_callback_url(url))
            return None
        return url

    async def handle(self, payload: SkillPayload, *, arrived_at: datetime, started: float) -> SkillResponse:
        """Reply to one utterance within Kakao's time limit; never raises for database trouble."""
        try:
            async with asyncio.timeout(self.settings.skill_store_timeout_seconds):
                outcome = await self._store(payload, arrived_at)
        except Exception as exc:  # the user must get a valid reply whatever the database does
            logger.error("Could not store skill request: {}: {}", type(exc).__name__, exc)
            return text_reply(texts.CANNOT_STORE)
        if isinstance(outcome, SkillResponse):
            return outcome
        self.wakeup.notify()
        if outcome.overloaded:
            if outcome.late_answers:
                return late_answer_reply(outcome.late_answers, follow_up=texts.OVERLOADED)
            return text_reply(texts.OVERLOADED, quick_replies=[texts.CHECK_ANSWER])
        if outcome.use_callback:
            return callback_ack(self.settings.kakao_ack_text)
        budget = min(self.settings.skill_sync_wait_seconds, REPLY_BUDGET_SECONDS - (time.monotonic() - started))
        try:
            answer = await wait_for_answer(self.db.sessions, outcome.task_id, timeout=max(budget, 0.0))
        except Exception as exc:
            logger.error("Could not read the answer of task {}: {}", outcome.task_id, type(exc).__name__)
            answer = None
        if outcome.late_answers:
            return late_answer_reply(outcome.late_answers, follow_up=answer or texts.PREPARING)
        if answer is None:
            return text_reply(texts.PREPARING, quick_replies=[texts.CHECK_ANSWER])
        return text_reply(answer)

    async def welcome(self, payload: SkillPayload) -> SkillResponse:
        """Greet the user, by name when we know it; a slow database only costs the name."""
        name = None
        try:
            async with asyncio.timeout(self.settings.skill_store_timeout_seconds), self.db.sessions() as session:
                user = await find_user(session, bot_id=payload.bot_key, kakao_user_id=payload.user_key)
            name = user.name if user else None
        except Exception as exc:
            logger.warning("Welcome without name lookup: {}", type(exc).__name__)
        return text_reply(texts.WELCOME_NAMED.format(name=name) if name else texts.WELCOME)

    async def _store(self, payload: SkillPayload, arrived_at: datetime) -> SkillResponse | Enqueued:
        callback_url = self.trusted_callback(payload)
        matched = COMMANDS.match(payload.utterance)
        # A callback the backlog cannot keep is not asked for: the task is queued without one, its answer kept.
        overloaded = matched is None and callback_url is not None and await self.backlog.overloaded()
        if overloaded:
            callback_url = None
        if matched is None and self.db.is_postgres:
            task_id = await store_and_enqueue(await self.db.raw_pool(), self._intake(payload, arrived_at, callback_url))
            if task_id is not None:
                return Enqueued(task_id, callback_url is not None, [], overloaded)
        async with self.db.sessions() as session, session.begin():
            user = await touch_user(session, bot_id=payload.bot_key, kakao_user_id=payload.user_key, now=arrived_at)
            if matched or user.name_mode:
                handler, args = matched or (name_mode_reply, payload.utterance)
                return await handler(CommandContext(session, self.settings, payload, user, args, arrived_at))
            late = await take_pending_answers(session, user.id, now=arrived_at)
            conversation_id = await current_conversation(
                session,
                user_id=user.id,
                bot_id=payload.bot_key,
                now=arrived_at,
                timeout_minutes=self.settings.session_timeout_minutes,
            )
            message_id = await add_message(
                session,
                conversation_id=conversation_id,
                user_id=user.id,
                role=Role.USER,
                text=payload.utterance,
                now=arrived_at,
            )
            # A late answer must reach the user now, so this reply cannot be a callback acknowledgement.
            intake = self._intake(payload, arrived_at, None if late else callback_url)
            task_id = await enqueue(
                session,
                bot_id=intake.bot_id,
                user_id=user.id,
                conversation_id=conversation_id,
                message_id=message_id,
                now=arrived_at,
                max_attempts=intake.max_attempts,
                block_name=intake.block_name,
                callback_url=intake.callback_url,
                callback_not_before=intake.callback_not_before,
                callback_deadline=intake.callback_deadline,
                user_is_friend=intake.user_is_friend,
            )
        return Enqueued(task_id, intake.callback_url is not None, late, overloaded)

    def _intake(self, payload: SkillPayload, arrived_at: datetime, callback_url: str | None) -> Intake:
        return Intake(
            bot_id=payload.bot_key,
            kakao_user_id=payload.user_key,
            utterance=payload.utterance,
            now=arrived_at,
            session_timeout_minutes=self.settings.session_timeout_minutes,
            block_name=payload.block_name,
            max_attempts=self.settings.task_max_attempts,
            callback_url=callback_url,
            callback_not_before=arrived_at + timedelta(seconds=1) if callback_url else None,
            callback_deadline=(
                arrived_at + timedelta(seconds=self.settings.callback_deadline_seconds) if callback_url else None
            ),
            user_is_friend=payload.is_friend,
        )
