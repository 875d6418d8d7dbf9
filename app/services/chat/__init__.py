"""The OpenAI-compatible chat API: keys, rate limits, budgets, completions (whole or streamed) and speech."""
