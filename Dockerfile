# syntax=docker/dockerfile:1
# The engine only: it runs beside an Asterisk (configured with `ivr-engine asterisk-conf
# render`) and a PostgreSQL. Configure it with IVR_* environment variables (see README);
# deploy/compose.yaml runs all three.
#
#   build    the wheel, installed with its pinned dependencies into /opt/ivr-engine
#   sounds   the prompts rendered by espeak-ng and sox (which stay out of the final image)
#   final    the virtualenv and the rendered prompts, run as a numeric non-root user

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE requirements.lock ./
COPY src ./src
RUN python -m venv /opt/ivr-engine \
    && /opt/ivr-engine/bin/pip install --no-cache-dir --constraint requirements.lock .

FROM python:3.11-slim-bookworm AS sounds
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng=1.51+dfsg-10* sox=14.4.2+git20190427-3* \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/ivr-engine /opt/ivr-engine
RUN /opt/ivr-engine/bin/ivr-engine sounds render --out /sounds

FROM python:3.11-slim-bookworm
COPY --from=build /opt/ivr-engine /opt/ivr-engine
# <lang>/ivr-engine/*.{ulaw,alaw,wav}: copy them into Asterisk's sounds directory, or share
# this directory with it as a volume (deploy/compose.yaml does).
COPY --from=sounds /sounds /usr/share/ivr-engine/sounds
ENV PATH=/opt/ivr-engine/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    IVR_HTTP_HOST=0.0.0.0 \
    IVR_LOG_FORMAT=json
# A numeric user the host needs not know; the engine writes nothing to disk.
USER 10001:10001
EXPOSE 8080
# Ready = PostgreSQL answers, ARI is connected, not draining (/readyz).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('IVR_HTTP_PORT', '8080'), timeout=4)"]
# SIGTERM: the engine stops taking work and ends its calls cleanly.
STOPSIGNAL SIGTERM
CMD ["ivr-engine", "serve"]
