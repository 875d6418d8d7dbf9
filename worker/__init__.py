"""The background worker runtime: claims queued tasks and delivers answers."""
