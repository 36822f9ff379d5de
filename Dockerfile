# syntax=docker/dockerfile:1
# tradesense-operator image: `make image` (docker build -t tradesense-operator:dev .).
#
# Base: python:3.11-slim on Debian bookworm, pinned by suffix because bookworm is the release that ships
# PostgreSQL 15 client tools (postgresql-client-15: pg_dump, pg_restore, psql, pg_isready) matching the
# TradeSense database; the unsuffixed tag follows newer Debian releases with other client versions.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: the operator and every dependency as wheels (compilers and caches stay in this stage) ----
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN python -m pip wheel --wheel-dir /wheels .

# ---- runtime: slim Python, PostgreSQL 15 client tools, the wheels, a non-root user ----
# PATH puts the version-15 binaries first, so pg_dump/psql are exactly 15 rather than whatever Debian's
# pg_wrapper in /usr/bin would pick.
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    TSO_LOG_FORMAT=json \
    HOME=/tmp \
    PATH=/usr/lib/postgresql/15/bin:$PATH
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client-15 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# uid/gid 10001: numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
RUN groupadd --system --gid 10001 tradesense \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin tradesense \
    && mkdir -p /backups \
    && chown 10001:10001 /backups
# Install offline from the builder's wheels; the bind mount keeps the wheels out of the image layers.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m pip install --no-index --find-links /wheels tradesense-operator
USER 10001:10001
WORKDIR /tmp
# 8080: kopf liveness /healthz; 8081: /metrics, /readyz, Alertmanager bridge.
EXPOSE 8080 8081
ENTRYPOINT ["tradesense-operator"]
CMD ["run"]
