"""Prometheus metrics of the queue, the worker, the callback delivery and the response cache (one registry per
process)."""

from prometheus_client import Counter, Gauge, Histogram

TASKS_FINISHED = Counter("skill_tasks_finished_total", "Tasks that reached a final status.", ["status"])
TASK_RETRIES = Counter("skill_task_retries_total", "Task attempts scheduled again after a passing failure.")
TASKS_IN_FLIGHT = Gauge("skill_tasks_in_flight", "Tasks this process is working on now.")
QUEUE_DEPTH = Gauge("skill_queue_depth", "Tasks in the queue by status (read at scrape time).", ["status"])
OLDEST_PENDING = Gauge("skill_queue_oldest_pending_seconds", "Wait of the oldest runnable task (read at scrape time).")
PICKUP_LATENCY = Histogram(
    "skill_task_pickup_seconds",
    "Enqueue to first claim.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
END_TO_END_LATENCY = Histogram(
    "skill_answer_delivered_seconds",
    "Arrival of the message to the answer delivered through the callback.",
    buckets=(0.5, 1, 1.5, 2, 3, 5, 8, 13, 20, 30, 45, 60),
)
CALLBACKS = Counter("skill_callbacks_total", "Callback POST outcomes.", ["kind", "outcome"])
ANSWER_LATENCY = Histogram(
    "skill_llm_answer_seconds",
    "Time the answer pipeline (LLM included) took per attempt.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 45),
)
ANSWER_ERRORS = Counter("skill_llm_errors_total", "Failed answer attempts by kind.", ["kind"])
USAGE_TOKENS = Counter(
    "skill_usage_tokens_total", "Model tokens as the provider reported them.", ["model", "bot_id", "direction"]
)
USAGE_COST = Counter("skill_usage_cost_usd_total", "Cost of model calls at the price table's prices.", ["model", "bot_id"])
USAGE_UNPRICED = Counter("skill_usage_unpriced_calls_total", "Model calls recorded without a price.", ["model"])
BUDGET_REFUSALS = Counter(
    "skill_usage_budget_refusals_total", "Messages refused because a monthly budget was spent.", ["scope", "bot_id"]
)
CACHE_HITS = Counter("response_cache_hits", "Answers served from the response cache, without a model call.")
CACHE_MISSES = Counter("response_cache_misses", "Response cache lookups that found nothing and asked the model.")
