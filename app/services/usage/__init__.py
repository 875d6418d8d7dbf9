"""Usage accounting and monthly token budgets: one priced row per model call, a daily rollup, alerts, reports.

Public API (for the worker, the chat API, the response cache):
- `collect()` gathers the `ModelCall`s that `LLMClient.complete` and the OpenAI embedder `note()` in its context;
  a caller with its own provider call (a stream: ask `stream_options={"include_usage": True}`) notes it itself.
  `ModelCall(kind, model, input_tokens, output_tokens, latency_ms, cache_hit)`; kinds in `Kind`
  (answer, summary, embedding, chat, audio); a cache hit is a call with 0 tokens and `cache_hit=True`.
- `record_calls(conn, calls, now=, day=, bot_id=, user_id=, api_key_id=, task_id=, message_id=)`: usage rows only.
- `UsageService(settings, db)`: `reserve(holders, tokens=, now=, bot_id=, task_id=)` -> `Reservation`
  (`.admitted`, or `.refused` with the spent holder; `refusal()` words it), then `settle(reservation, calls, ...)`
  records the calls and turns the reservation into real usage (no calls: a release) -> `Settled(alerts, notice)`.
  A holder is `Holder(scope, id, default_limit, message_limit)`; scopes `Scope.USER`, `Scope.BOT`, `Scope.API_KEY`
  (any scope string works; admin overrides in `usagelimit` apply to it by (scope, id)).
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
