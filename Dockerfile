# syntax=docker/dockerfile:1.7
# Pravah images, one Dockerfile, three targets:
#
#   docker build --target runner   -t ghcr.io/pravah-io/pravah-runner:dev   .   # `pravah runner` + the Rust engine
#   docker build --target operator -t ghcr.io/pravah-io/pravah-operator:dev .   # `pravah-operator`
#   docker build --target api      -t ghcr.io/pravah-io/pravah-api:dev      .   # `pravah-api`
#
# Stages: `engine` builds the pravah_engine wheel with maturin (Rust, release profile);
# `python` builds the pravah wheel and the dependencies into a virtual environment; the
# runtime images copy only the virtual environment onto a slim Python base and run as an
# unprivileged user (uid 10001) with a read-only root filesystem.

ARG PYTHON_VERSION=3.11
ARG RUST_VERSION=1.95

# -- the Rust engine, as a wheel --------------------------------------------------------
# Built on the same Python base as the runtime, so the wheel matches its interpreter.
FROM python:${PYTHON_VERSION}-slim-bookworm AS engine
ARG RUST_VERSION
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl ca-certificates build-essential \
 && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/opt/rustup CARGO_HOME=/opt/cargo PATH=/opt/cargo/bin:$PATH
RUN curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain ${RUST_VERSION} \
 && pip install --no-cache-dir 'maturin>=1.7,<2'
WORKDIR /src/engine-crate
COPY engine-crate/ ./
RUN --mount=type=cache,target=/opt/cargo/registry \
    --mount=type=cache,target=/src/engine-crate/target \
    maturin build --release --locked --strip --interpreter python3 --out /wheels

# -- the Python packages, in a virtual environment ---------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS python
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/pravah
WORKDIR /src
COPY pyproject.toml README.md ./
COPY job-runner/ job-runner/
COPY operator/ operator/
COPY api/ api/
RUN /opt/pravah/bin/pip install --no-compile . \
 && /opt/pravah/bin/python -m compileall -q /opt/pravah/lib

FROM python AS python-engine
COPY --from=engine /wheels/ /wheels/
RUN /opt/pravah/bin/pip install --no-compile /wheels/pravah_engine-*.whl

# -- runtime images ------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
LABEL org.opencontainers.image.source="https://github.com/pravah-io/pravah" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 pravah \
 && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --shell /usr/sbin/nologin pravah
ENV PATH=/opt/pravah/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
WORKDIR /tmp
USER 10001:10001

FROM runtime AS runner
# The Pravah packages are owned by the runtime user so that a dev loop (Tilt live_update)
# can sync source into them; in a cluster the root filesystem is read-only anyway.
COPY --from=python-engine --chown=10001:10001 /opt/pravah /opt/pravah
ENTRYPOINT ["pravah", "runner"]

FROM runtime AS operator
COPY --from=python --chown=10001:10001 /opt/pravah /opt/pravah
EXPOSE 8080
ENTRYPOINT ["pravah-operator"]

FROM runtime AS api
COPY --from=python --chown=10001:10001 /opt/pravah /opt/pravah
EXPOSE 8000
ENTRYPOINT ["pravah-api"]
