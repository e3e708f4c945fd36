# The nudge worker image (docker-compose.yml's `worker`, `table-init` and `connector-init`).
# Installed editable from /app so paths relative to the project (rules/, schemas/) resolve as in a clone.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY . /app
RUN pip install -e . \
    && useradd --system --uid 10001 --home-dir /app nudge \
    && mkdir -p /data /app/.cache \
    && chown -R nudge /data /app/.cache

USER nudge
EXPOSE 16066
CMD ["nudge", "worker"]
