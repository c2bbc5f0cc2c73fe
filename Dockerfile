# syntax=docker/dockerfile:1
#
# The tokend server image: `tokend serve` on the embedded default registry, as a non-root user.
#
#   docker build -t tokend:0.1.0 .
#   docker run --rm -p 50051:50051 -p 9464:9464 tokend:0.1.0
#   docker run --rm tokend:0.1.0 --help            # arguments go to `tokend serve`
#
# Two stages. The builder installs a C compiler, turns service/ into a wheel (compiling the native core,
# service/native/) with a pinned, hash-checked build backend and installs it, with the hash-checked
# runtime lock (deploy/requirements/runtime.lock), into a virtual environment at /opt/tokend. The final
# stage is the same slim Python base plus that venv only: no compilers, no pip, no wheels, no caches. tests/deploy/test_install_and_serve.py performs these same steps
# on the build machine (no Docker engine runs there) and serves from the result.
#
# Signals: `tokend serve` runs as PID 1 (exec-form ENTRYPOINT, no shell in between). Its supervisor installs
# SIGTERM/SIGINT handlers (PID 1 gets no default signal actions from the kernel, so a handler is needed, and
# it has one) and waits for every worker it forks, so there are no zombies to reap; tini would add
# nothing. Workers spawn no children of their own.
#
# The base is pinned by tag. For reproducible production builds pin it by digest as well
# (--build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:...); see deploy/README.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1

# The native core (tokend.engine._native, C) compiles while the wheel builds: gcc and the C library's
# headers, in this stage only (Python's headers come with the base image). Not pinned: Debian's archive
# keeps only the newest build of each package in a release, so an exact libc6-dev pin fails the build the
# day a security fix lands; the base image tag fixes the release, and no compiler reaches the final stage.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install --yes --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /build

# Dependencies first: this layer is reused until a lock file changes.
COPY deploy/requirements/build.lock deploy/requirements/runtime.lock ./
RUN python -m venv /opt/build-tools \
 && /opt/build-tools/bin/pip install --require-hashes --no-deps -r build.lock \
 && python -m venv /opt/tokend \
 && /opt/tokend/bin/pip install --require-hashes --no-deps -r runtime.lock

COPY api/ ./api/
COPY service/ ./service/
# --no-build-isolation: build with the pinned backend above, not the newest setuptools on the index. Two
# wheels: the API package (stubs, wire constants; shared with the client) and the server. Then install them
# without touching the index (--no-index --no-deps): every other dependency came from the lock, and
# `pip check` fails the build if the lock no longer covers what the wheels require. Last, the installers
# go: nothing at run time needs pip or the setuptools that `python -m venv` seeds (3.11).
RUN /opt/build-tools/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /build/wheels ./api ./service \
 && /opt/tokend/bin/pip install --no-index --no-deps /build/wheels/tokend_api-*.whl /build/wheels/tokend-*.whl \
 && /opt/tokend/bin/pip check \
 && /opt/tokend/bin/pip uninstall --yes pip setuptools

# Docker-only liveness check (Kubernetes uses its native gRPC probes instead; see deploy/k8s/).
COPY --chmod=0755 deploy/docker/healthcheck.py /opt/tokend/bin/tokend-healthcheck


FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="tokend" \
      org.opencontainers.image.description="Byte-level BPE tokenizer service (gRPC), tiktoken-compatible ids" \
      org.opencontainers.image.licenses="MIT"

# A fixed numeric uid/gid so that Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 tokend \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin tokend

COPY --from=builder /opt/tokend /opt/tokend

# The root filesystem is read-only in Kubernetes; /tmp is the one writable place (an emptyDir there).
# PYTHONDONTWRITEBYTECODE: the venv was byte-compiled at install time. TMPDIR: the supervisor's Prometheus
# multiprocess files. XDG_CACHE_HOME: the HTTP registry's cache of verified model files (the user's
# home, /nonexistent, is not writable).
ENV PATH=/opt/tokend/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TMPDIR=/tmp \
    XDG_CACHE_HOME=/tmp/.cache

USER 10001:10001
WORKDIR /tmp

# 50051 gRPC, 9464 Prometheus metrics, 8080 token playground (on by the server's default but on 127.0.0.1
# only: TOKEND_PLAYGROUND_HOST=0.0.0.0 publishes it; the Kubernetes base turns it off with
# TOKEND_PLAYGROUND_PORT=0, see deploy/k8s/base/kustomization.yaml). Reflection is off unless TOKEND_REFLECTION=true.
EXPOSE 50051 9464 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["tokend-healthcheck"]

ENTRYPOINT ["tokend", "serve"]
