"""Every raw SQL statement on `aiprocessingtask`, named; the SQLAlchemy forms live beside them in this package.

Raw statements run on asyncpg (PostgreSQL) where a hot path cannot afford SQLAlchemy's per-statement cost.
Each mirrors its SQLAlchemy twin exactly, and tests run both against the same expectations.
"""

from app.queue.schemas import ClaimedTask, OrphanedCallback
from app.queue.wakeup import NOTIFY_CHANNEL

# An answer still owed to its user: completed, not yet handed over, and no callback can still carry it
# (none, or spent, or past its deadline). `{now}` is the placeholder of the current time.
ANSWER_OWED = (
    "status = 'completed' AND answer_delivered_at IS NULL"
    " AND (callback_status NOT IN ('pending', 'sending') OR callback_deadline < {now})"
)

_COLUMNS = ", ".join(f"t.{name}" for name in ClaimedTask.model_fields)

# A pending callback whose deadline falls before the cutoff ({cutoff}: now + apology margin + expected answer
# time) can no longer carry the answer: the overdue sweep spends it on an apology. `{now}`: the current time.
CALLBACK_TOO_LATE = (
    "callback_status = 'pending' AND callback_deadline >= {now} AND callback_deadline < {cutoff}"
)
# Claim rank: open callbacks that can still make their window first (0), then the rest (1): no callback,
# callback spent or expired. Oldest first within each rank.
CLAIM_RANK = "CASE WHEN callback_status = 'pending' AND callback_deadline >= {cutoff} THEN 0 ELSE 1 END"

CLAIM_SQL = f"""
WITH ready AS (
    SELECT id FROM aiprocessingtask
    WHERE status = 'pending' AND run_after <= $1
      AND ($5::timestamptz IS NULL OR NOT ({CALLBACK_TOO_LATE.format(now="$1", cutoff="$5")}))
    ORDER BY {CLAIM_RANK.format(cutoff="COALESCE($5, $1)")}, created_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE aiprocessingtask t
SET status = 'processing', attempts = t.attempts + 1, locked_by = $3, lease_expires_at = $4, started_at = $1
WHERE t.id = ANY(ARRAY(SELECT id FROM ready))  -- a primary-key lookup, never a join over the whole table
RETURNING {_COLUMNS}
"""

# The task row is locked first, so a reaper that got there before us leaves `held` empty and
# nothing is written (no orphan message). A non-NULL $14 takes a pending callback for this worker until then.
COMPLETE_SQL = """
WITH held AS (
    SELECT id, conversation_id, user_id, ($14::timestamptz IS NOT NULL AND callback_status = 'pending') AS takes
    FROM aiprocessingtask
    WHERE id = $1 AND locked_by = $2 AND status = 'processing'
    FOR UPDATE
),
msg AS (
    INSERT INTO message (conversation_id, user_id, role, text, created_at)
    SELECT conversation_id, user_id, 'assistant', $3, $4 FROM held
    RETURNING id
),
log AS (
    INSERT INTO promptlog (
        msg_id, task_id, template_name, template_version, rendered_prompt, model,
        input_tokens, output_tokens, latency_ms, finish_reason, sources, cache_key, cache_hit, created_at
    )
    SELECT msg.id, $1, $7, $8, $9, $10, $5, $6, $11, $12, $13, $15, $16, $4 FROM msg
    WHERE $9::text IS NOT NULL
)
UPDATE aiprocessingtask t
SET status = 'completed', ai_response = $3, response_message_id = msg.id, input_tokens = $5, output_tokens = $6,
    completed_at = $4, locked_by = NULL, lease_expires_at = NULL,
    callback_status = CASE WHEN held.takes THEN 'sending' ELSE t.callback_status END,
    callback_sender = CASE WHEN held.takes THEN $2 ELSE t.callback_sender END,
    callback_lease_expires_at = CASE WHEN held.takes THEN $14 ELSE t.callback_lease_expires_at END,
    callback_kind = CASE WHEN held.takes THEN 'answer' ELSE t.callback_kind END
FROM msg, held
WHERE t.id = $1
RETURNING msg.id
"""

# Task leases of the tasks a worker runs, send leases of the callbacks it POSTs ($1: both kinds of ids).
RENEW_SQL = """
UPDATE aiprocessingtask
SET lease_expires_at = CASE WHEN locked_by = $2 AND status = 'processing' THEN $3 ELSE lease_expires_at END,
    callback_lease_expires_at = CASE WHEN callback_sender = $2 AND callback_status = 'sending'
                                     THEN $3 ELSE callback_lease_expires_at END
WHERE id = ANY($1::uuid[])
  AND ((locked_by = $2 AND status = 'processing') OR (callback_sender = $2 AND callback_status = 'sending'))
"""

# Out of `sending`, only its sender ($6) may move a callback; into `sending`, $6 holds it until $7, carrying $8.
MOVE_CALLBACK_SQL = """
UPDATE aiprocessingtask
SET callback_status = $3, callback_error = COALESCE($4, callback_error),
    answer_delivered_at = COALESCE($5, answer_delivered_at),
    callback_sender = COALESCE($6, callback_sender), callback_lease_expires_at = $7,
    callback_kind = COALESCE($8, callback_kind)
WHERE id = $1 AND callback_status = $2 AND ($2 <> 'sending' OR callback_sender IS NOT DISTINCT FROM $6)
"""

# Callbacks whose sender died mid-send (send lease expired, deadline ahead), taken over by $1 until $3;
# $4: tasks the taking process is still working on.
TAKE_ORPHANED_SQL = f"""
UPDATE aiprocessingtask
SET callback_sender = $1, callback_lease_expires_at = $3
WHERE callback_status = 'sending' AND callback_lease_expires_at < $2 AND callback_deadline > $2
  AND id <> ALL($4::uuid[])
RETURNING {", ".join(OrphanedCallback.model_fields)}
"""

# Open callbacks of unclaimed tasks that cannot make their window ($2: now, $4: cutoff), taken by $1 until $3 for
# an apology; the task stays pending (answered later, its answer kept for the user's next message).
TAKE_OVERDUE_SQL = f"""
UPDATE aiprocessingtask
SET callback_status = 'sending', callback_sender = $1, callback_lease_expires_at = $3, callback_kind = 'apology'
WHERE status = 'pending' AND {CALLBACK_TOO_LATE.format(now="$2", cutoff="$4")}
RETURNING {", ".join(OrphanedCallback.model_fields)}
"""

# /skill's PostgreSQL fast path: user, conversation, message and task in one statement (see app.queue.intake).
INTAKE_SQL = f"""
WITH u AS (
    INSERT INTO appuser AS a (bot_id, kakao_user_id, name_mode, created_at, last_seen_at)
    VALUES ($1, $2, false, $3, $3)
    ON CONFLICT (bot_id, kakao_user_id) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at
    RETURNING a.id, a.name_mode
),
go AS (
    SELECT u.id AS user_id FROM u
    WHERE NOT u.name_mode
      AND NOT EXISTS (
          SELECT 1 FROM aiprocessingtask
          WHERE user_id = u.id AND {ANSWER_OWED.format(now="$3")}
      )
),
continued AS (
    UPDATE conversation c SET last_message_at = $3
    FROM go
    WHERE c.id = (
              SELECT id FROM conversation WHERE user_id = go.user_id ORDER BY last_message_at DESC LIMIT 1
          )
      AND c.last_message_at > $3 - make_interval(mins => $4)
    RETURNING c.id
),
started AS (
    INSERT INTO conversation (user_id, started_at, last_message_at)
    SELECT go.user_id, $3, $3 FROM go WHERE NOT EXISTS (SELECT 1 FROM continued)
    RETURNING id, user_id
),
started_event AS (
    INSERT INTO eventlog (user_id, bot_id, event_type, detail, created_at)
    SELECT user_id, $1, 'conversation_started', id::text, $3 FROM started
),
msg AS (
    INSERT INTO message (conversation_id, user_id, role, text, created_at)
    SELECT conv.id, go.user_id, 'user', $5, $3
    FROM (SELECT id FROM continued UNION ALL SELECT id FROM started) AS conv, go
    RETURNING id, conversation_id, user_id
),
task AS (
    INSERT INTO aiprocessingtask (
        id, bot_id, user_id, conversation_id, message_id, block_name, status, attempts, max_attempts,
        run_after, callback_url, callback_not_before, callback_deadline, callback_status,
        input_tokens, output_tokens, reserved_tokens, user_is_friend, created_at
    )
    SELECT $6, $1, msg.user_id, msg.conversation_id, msg.id, $7, 'pending', 0, $8,
           $3, $9, $10, $11, $12, 0, 0, 0, $13, $3
    FROM msg
    RETURNING id
)
SELECT task.id, pg_notify('{NOTIFY_CHANNEL}', '') FROM task
"""

# The task row as /skill's fast path inserts it, with its NOTIFY, for one pending task without a callback.
ENQUEUE_SQL = f"""
WITH task AS (
    INSERT INTO aiprocessingtask (
        id, bot_id, user_id, conversation_id, message_id, status, attempts, max_attempts, run_after,
        callback_status, input_tokens, output_tokens, reserved_tokens, created_at
    )
    VALUES ($1, $2, $3, $4, $5, 'pending', 0, 3, $6, 'none', 0, 0, 0, $6)
    RETURNING id
)
SELECT task.id, pg_notify('{NOTIFY_CHANNEL}', '') FROM task
"""
