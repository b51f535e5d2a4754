# Pravah images, one Dockerfile, three targets:
#
#   docker build --target runner   -t ghcr.io/pravah-io/pravah-runner:dev   .   # `pravah-runner`
#   docker build --target operator -t ghcr.io/pravah-io/pravah-operator:dev .   # `pravah-operator`
#   docker build --target api      -t ghcr.io/pravah-io/pravah-api:dev      .   # `pravah-api`
#
# All three carry the Rust engine: the runner runs it, and the operator and the API check
# specs with it (a grep pattern is valid only if the engine's regex compiles it).
#
# Stages: `engine-build` builds the pravah_engine wheel with maturin (Rust, release profile);
# `python` builds the pravah wheel and the dependencies into a virtual environment, and
# `python-engine` adds the engine; the runtime images copy only the virtual environment
# onto the base and run as an unprivileged user (uid 10001) with a read-only root filesystem.
#
# Build arguments; the defaults need nothing but docker (BuildKit) and the internet:
#   BASE_IMAGE  base of every stage: python:3.11-slim-bookworm, or any Debian bookworm image
#               with python3.11 and venv support (scripts/base-image builds one with
#               debootstrap). Commands call `python3`, which both provide.
#   ENGINE      build     compile the engine in the image (rustup + maturin)
#               prebuilt  install the wheel from dist/engine/ (`maturin build --out dist/engine`)
#   DEPS        pypi        Python dependencies from PyPI
#               wheelhouse  install offline, only from the wheels in dist/wheels/ (the
#                           dependencies plus setuptools and wheel, which build pravah)
#   SOURCE_DATE_EPOCH  mtime of the installed Python sources (0; see the `python` stage)
# ENGINE and DEPS choose a stage by name (`FROM python-${DEPS} AS python`), so only the
# chosen one is built and, with the defaults, dist/ need not exist. The chosen stages are
# not bare aliases (`FROM x AS y` alone): buildah 1.28 leaves a container behind for those.
# buildah/podman before 1.29 ignore ARG defaults when they skip unused stages: pass ENGINE
# and DEPS with --build-arg there. scripts/images builds the three images offline with
# buildah: local base, prebuilt engine, wheelhouse.

ARG BASE_IMAGE=python:3.11-slim-bookworm
ARG ENGINE=build
ARG DEPS=pypi
ARG RUST_VERSION=1.95
ARG SOURCE_DATE_EPOCH=0

# -- the Rust engine, as a wheel --------------------------------------------------------
# Built on the runtime's base, so the wheel matches its interpreter.
FROM ${BASE_IMAGE} AS engine-build
ARG RUST_VERSION
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl ca-certificates build-essential \
 && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/opt/rustup CARGO_HOME=/opt/cargo PATH=/opt/cargo/bin:$PATH
# maturin goes into its own venv: Debian's python3 refuses system-wide pip installs.
RUN curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain ${RUST_VERSION} \
 && python3 -m venv /opt/maturin \
 && /opt/maturin/bin/pip install --no-cache-dir 'maturin>=1.7,<2'
WORKDIR /src/engine-crate
COPY engine-crate/ ./
RUN --mount=type=cache,target=/opt/cargo/registry \
    --mount=type=cache,target=/src/engine-crate/target \
    /opt/maturin/bin/maturin build --release --locked --strip --interpreter python3 --out /engine

# -- the Python packages, in a virtual environment ---------------------------------------
# The wheelhouse: none, or dist/wheels/.
FROM ${BASE_IMAGE} AS python-pypi
RUN mkdir /wheels

FROM ${BASE_IMAGE} AS python-wheelhouse
COPY dist/wheels/ /wheels/

FROM python-${DEPS} AS python
ARG DEPS
ARG SOURCE_DATE_EPOCH
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/pravah
WORKDIR /src
COPY pyproject.toml README.md ./
COPY job-runner/ job-runner/
COPY operator/ operator/
COPY api/ api/
# The .pyc files are compiled here because the root filesystem is read-only at run time.
# The sources get the mtime SOURCE_DATE_EPOCH first: a reproducible build (buildah
# --timestamp) gives every file in the image that mtime, and a .pyc is valid only for its
# source's mtime. (Hash-checked .pyc, the default when SOURCE_DATE_EPOCH is set, would not
# care but make imports a fifth slower.)
RUN if [ "$DEPS" = wheelhouse ]; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels; fi \
 && /opt/pravah/bin/pip install --no-compile . \
 && find /opt/pravah/lib -name '*.py' -exec touch -d "@$SOURCE_DATE_EPOCH" {} + \
 && /opt/pravah/bin/python -m compileall -q -j 0 --invalidation-mode timestamp /opt/pravah/lib

# -- the Python packages and the engine ------------------------------------------------------
FROM python AS python-engine-build
COPY --from=engine-build /engine/ /engine/

FROM python AS python-engine-prebuilt
COPY dist/engine/ /engine/

FROM python-engine-${ENGINE} AS python-engine
ARG SOURCE_DATE_EPOCH
RUN /opt/pravah/bin/pip install --no-index --no-deps --no-compile /engine/pravah_engine-*.whl \
 && find /opt/pravah/lib -name '*.py' -exec touch -d "@$SOURCE_DATE_EPOCH" {} + \
 && /opt/pravah/bin/python -m compileall -q -j 0 --invalidation-mode timestamp /opt/pravah/lib

# -- runtime images ------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime
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
ENTRYPOINT ["pravah-runner"]

FROM runtime AS operator
COPY --from=python-engine --chown=10001:10001 /opt/pravah /opt/pravah
EXPOSE 8080
ENTRYPOINT ["pravah-operator"]

FROM runtime AS api
COPY --from=python-engine --chown=10001:10001 /opt/pravah /opt/pravah
EXPOSE 8000
ENTRYPOINT ["pravah-api"]
