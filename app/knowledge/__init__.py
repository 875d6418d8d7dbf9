"""Command line for the knowledge base: `python -m app.knowledge ingest PATH... --bot BOT`."""
