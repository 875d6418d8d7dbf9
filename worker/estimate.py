"""How long an answer is expected to take: a moving average of this worker's recent answer durations."""

from datetime import datetime, timedelta

# Never expect less: an instant fake or a cache hit must not let a task be started a moment before its
# apology point, where its answer would certainly miss the callback.
ANSWER_FLOOR_SECONDS = 1.0
# Weight of the newest duration: about the last ten answers count.
_ALPHA = 0.2


class AnswerTimeEstimate:
    """EWMA of successful answer durations, between the floor and the answer timeout."""

    def __init__(self, *, ceiling: float, floor: float = ANSWER_FLOOR_SECONDS) -> None:
        self._floor = floor
        self._ceiling = max(ceiling, floor)
        self._average: float | None = None

    @property
    def seconds(self) -> float:
        return min(max(self._average or self._floor, self._floor), self._ceiling)

    def observe(self, seconds: float) -> None:
        self._average = seconds if self._average is None else self._average + _ALPHA * (seconds - self._average)

    def cutoff(self, now: datetime, apology_margin_seconds: float) -> datetime:
        """Open callbacks with a deadline before this cannot carry an answer started now."""
        return now + timedelta(seconds=apology_margin_seconds + self.seconds)
