"""Usage accounting and monthly token budgets: one priced row per model call, a daily rollup, alerts, reports.

- `collect()` gathers the `ModelCall(kind, model, input_tokens, output_tokens, latency_ms, cache_hit)`s that
  `LLMClient.complete` and the OpenAI embedder `note()`; your own provider call notes its own (streams: ask
  `stream_options={"include_usage": True}`). Kinds: `Kind` (answer, summary, embedding, chat, audio); a cache hit is
  a call of 0 tokens with `cache_hit=True`. `record_calls(conn, calls, ...)` / `record_outside_budgets`: rows only.
- `UsageService(settings, db)`: `reserve(holders, tokens=, now=, bot_id=, task_id=None)` -> `Reservation`
  (`.admitted`, or `.refused`; `refusal()` words it), then `settle(reservation, calls, now=, bot_id=, user_id=,
  api_key_id=, keep_reservation=, answered=)` records the calls and turns the reservation into real usage.
- A holder is `Holder(scope, id, default_limit, message_limit)`, scope `Scope.USER`, `.BOT` or `.API_KEY`; admin
  overrides (`usagelimit`) apply to any (scope, id).
"""

from app.services.usage.budgets import Holder, HolderState, Policy, Reservation, Scope
from app.services.usage.calls import Kind, ModelCall, collect, note
from app.services.usage.periods import local_day, month_key
from app.services.usage.records import Recorded, record_calls
from app.services.usage.service import Settled, TokenEstimate, UsageService, record_outside_budgets

__all__ = [
    "Holder",
    "HolderState",
    "Kind",
    "ModelCall",
    "Policy",
    "Recorded",
    "Reservation",
    "Scope",
    "Settled",
    "TokenEstimate",
    "UsageService",
    "collect",
    "local_day",
    "month_key",
    "note",
    "record_calls",
    "record_outside_budgets",
]
