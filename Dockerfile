# syntax=docker/dockerfile:1.7
# One image for every Puskesos service and the simulated payment gateway:
#   docker build -t puskesos:latest .
#   docker run --rm puskesos:latest python -m puskesos_intake        (and so on; see deploy/)
# Dependencies come only from uv.lock (`uv sync --locked --no-dev`); the runtime stage holds the
# virtual environment and nothing else, and runs as an unprivileged user.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: resolve and install into /opt/puskesos/venv -------------------------------------
FROM ${PYTHON_IMAGE} AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/puskesos/venv
WORKDIR /src

# Third-party dependencies first (a layer that changes only with the lock file).
COPY pyproject.toml uv.lock ./
COPY shared/pyproject.toml shared/pyproject.toml
COPY cli/pyproject.toml cli/pyproject.toml
COPY services/intake/pyproject.toml services/intake/pyproject.toml
COPY services/referral/pyproject.toml services/referral/pyproject.toml
COPY services/distribution/pyproject.toml services/distribution/pyproject.toml
COPY services/notification/pyproject.toml services/notification/pyproject.toml
COPY services/audit/pyproject.toml services/audit/pyproject.toml
COPY console/pyproject.toml console/pyproject.toml
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-workspace

# Then the workspace's own packages, installed as wheels (no editable links to /src).
COPY shared/src shared/src
COPY cli/src cli/src
COPY services/intake/src services/intake/src
COPY services/referral/src services/referral/src
COPY services/distribution/src services/distribution/src
COPY services/notification/src services/notification/src
COPY services/audit/src services/audit/src
COPY console/src console/src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable

# ---- runtime --------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="puskesos" \
      org.opencontainers.image.description="Puskesos services (intake, referral, distribution, notification, audit) and the officers' console"
# /data: where a named volume keeps state (the gateway's ledger, local notification files); a
# new volume takes this directory's owner, so the unprivileged user can write to it.
RUN groupadd --system --gid 10001 puskesos \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin puskesos \
 && mkdir -p /data && chown 10001:10001 /data
COPY --from=build /opt/puskesos/venv /opt/puskesos/venv
ENV PATH=/opt/puskesos/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PUSKESOS_HTTP_HOST=0.0.0.0 \
    PUSKESOS_LOG_JSON=true
# An empty working directory: settings read .local/stack/stack.env relative to it, and a
# container must take its configuration from the environment only.
WORKDIR /app
USER 10001:10001
EXPOSE 8101 8102 8103 8104 8105 8190
# Every deployment names the service it runs (compose `command`, Kubernetes `command`).
CMD ["python", "-c", "import sys; sys.exit('choose a service: python -m puskesos_<intake|referral|distribution|notification|audit>')"]
