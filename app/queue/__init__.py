"""The `aiprocessingtask` queue: every statement on the table lives in this package.

`tasks` (a task's life), `callbacks` (the single-use callback and owed answers), `reads` (API views),
`heartbeats` (live workers), `sql` (the raw statements of the hot paths), `intake` (/skill's one-statement
enqueue on PostgreSQL). The names below are the package's public surface.
"""

from app.queue.callbacks import (
    move_callback,
    open_task_count,
    take_answer,
    take_orphaned_callbacks,
    take_overdue_callbacks,
    take_pending_answers,
)
from app.queue.connection import Conn, autocommit
from app.queue.heartbeats import beat, forget_worker, list_workers, prune_workers
from app.queue.reads import failed_holding_tokens, get_task, latest_answered_task, list_tasks, stats
from app.queue.schemas import (
    ClaimedTask,
    LeaseLost,
    OrphanedCallback,
    QueueStats,
    StoredAnswer,
)
from app.queue.tasks import (
    FINISHED,
    claim,
    complete,
    enqueue,
    fail,
    prune,
    reap_expired,
    release,
    renew_leases,
    retry_failed,
    schedule_retry,
)
from app.queue.wakeup import NOTIFY_CHANNEL, Wakeup

__all__ = [
    "FINISHED",
    "NOTIFY_CHANNEL",
    "ClaimedTask",
    "Conn",
    "LeaseLost",
    "OrphanedCallback",
    "QueueStats",
    "StoredAnswer",
    "Wakeup",
    "autocommit",
    "beat",
    "claim",
    "complete",
    "enqueue",
    "fail",
    "failed_holding_tokens",
    "forget_worker",
    "get_task",
    "latest_answered_task",
    "list_tasks",
    "list_workers",
    "move_callback",
    "open_task_count",
    "prune",
    "prune_workers",
    "reap_expired",
    "release",
    "renew_leases",
    "retry_failed",
    "schedule_retry",
    "stats",
    "take_answer",
    "take_orphaned_callbacks",
    "take_overdue_callbacks",
    "take_pending_answers",
]
