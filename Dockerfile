# Slim image for the API (default command) and the worker (`python -m worker`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv
RUN useradd --create-home --uid 10001 app

COPY pyproject.toml README.md ./
COPY app ./app
COPY worker ./worker
RUN pip install .

COPY migrations ./migrations
COPY alembic.ini logging.ini run_server.py ./
RUN mkdir -p /srv/data && chown app:app /srv/data

USER app
ENV HOST=0.0.0.0 PORT=8000
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"8000\")}/health', timeout=4)"

CMD ["sh", "-c", "alembic upgrade head && exec uvicorn app.main:app --host \"$HOST\" --port \"$PORT\" --log-config logging.ini --no-access-log"]
