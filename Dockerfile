# The engine only: it runs beside an existing Asterisk (configured with asterisk-conf/) and
# an existing PostgreSQL. Configure it with IVR_* environment variables (see README).
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng sox \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY migrations ./migrations
COPY sounds ./sounds
RUN pip install --no-cache-dir . \
    && ivr-engine sounds render --src sounds --out /app/build/sounds

RUN useradd --system --home /app ivr && chown -R ivr /app
USER ivr

# The rendered prompts are in /app/build/sounds/<lang>/ivr-engine/: copy them into the
# Asterisk host's sounds directory (or share it as a volume).
EXPOSE 8080
ENV IVR_HTTP_HOST=0.0.0.0
CMD ["ivr-engine", "serve"]
