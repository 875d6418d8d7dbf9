"""A task's budget: reserved when its attempt starts, settled to the provider's usage when the attempt ends."""

from loguru import logger

from app.models import utcnow
from app.queue import ClaimedTask, failed_holding_tokens
from app.services.usage import ModelCall, Reservation, Settled, TokenEstimate, UsageService


class TaskUsage:
    """The worker's side of `UsageService`: the user's and the bot's budgets of a Kakao task."""

    def __init__(self, service: UsageService) -> None:
        self.service = service
        self.estimate = TokenEstimate()

    async def admit(self, task: ClaimedTask) -> Reservation:
        """Reserve a typical task's tokens (one statement), or find the reservation an earlier attempt holds."""
        if not self.estimate.seeded:
            await self.estimate.seed(self.service.engine)
        held = self.held(task)
        if held is not None:
            return held
        holders = self.service.kakao_holders(bot_id=task.bot_id, user_id=task.user_id, is_friend=task.user_is_friend)
        # Offline answers (no OPENAI_API_KEY) reserve the same: the task must carry its mark, and it is given back.
        return await self.service.reserve(
            holders, tokens=self.estimate.tokens, now=utcnow(), bot_id=task.bot_id, task_id=task.id
        )

    def held(self, task: ClaimedTask) -> Reservation | None:
        """The reservation the task row carries from an earlier attempt, if any."""
        if not task.reserved_tokens:
            return None
        holders = self.service.kakao_holders(bot_id=task.bot_id, user_id=task.user_id, is_friend=task.user_is_friend)
        return self.service.held(holders, tokens=task.reserved_tokens, now=utcnow(), task_id=task.id)

    async def release_stranded(self) -> int:
        """Give back the reservations of tasks the reaper failed (their worker died holding them)."""
        async with self.service.db.sessions() as session:
            tasks = await failed_holding_tokens(session)
        for task in tasks:
            held = self.held(task)
            if held is not None:
                await self.service.settle(held, [], now=utcnow(), bot_id=task.bot_id, user_id=task.user_id,
                                          answered=False)
        return len(tasks)

    def refusal(self, task: ClaimedTask, reservation: Reservation) -> str:
        assert reservation.refused is not None
        return self.service.refusal(reservation.refused, now=utcnow(), is_friend=task.user_is_friend)

    async def settle(
        self, task: ClaimedTask, reservation: Reservation, calls: list[ModelCall], *, retrying: bool = False,
        answered: bool = True,
    ) -> Settled:
        """Record the attempt's calls; the reservation is given back unless the task will be tried again (a task
        given up is `answered=False`: it does not count towards the month's answers).

        Never raises: the answer (or the retry) matters more than its accounting, which is logged when lost.
        """
        if retrying and not calls:
            return Settled()
        if not retrying:
            self.estimate.observe(sum(c.total_tokens for c in calls if not c.cache_hit))
        try:
            return await self.service.settle(
                reservation, calls, now=utcnow(), bot_id=task.bot_id, user_id=task.user_id,
                message_id=task.message_id, keep_reservation=retrying, answered=answered,
            )
        except Exception as exc:  # noqa: BLE001 - see the docstring
            logger.error("Task {}: usage of {} call(s) not recorded: {}: {}", task.id, len(calls),
                         type(exc).__name__, exc)
            return Settled()
