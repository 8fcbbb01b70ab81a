# syntax=docker/dockerfile:1
# PagerBridge image: one Python distribution, two programs.
#   docker run IMAGE                 -> pagerbridge operator   (the Helm chart's Deployment)
#   docker run IMAGE relay --config  -> pagerbridge relay      (the operator's relay Deployments)
#
# Stage 1 builds wheels for the project and its runtime dependencies; stage 2 installs
# only those wheels (no compilers, no build tools, no test or lint extras), removes pip,
# and runs as the numeric non-root user 65532, so Kubernetes' runAsNonRoot can verify it.
#
# Supply chain: third-party code comes only from requirements/runtime.lock and
# requirements/build.lock (`make lock`), every file checked against the sha256 pinned
# there (--require-hashes, binary wheels only: nothing is compiled from an unpinned
# sdist or build backend). The base image is pinned by digest; a local build may pass
# another base (`--build-arg PYTHON_IMAGE=...`, e.g. the real-node helper's local image):
# it needs python (>= 3.11) with pip.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY requirements/ requirements/
# The runtime dependencies' wheels, and the build backend (setuptools) our own wheel needs,
# both hash-checked.
RUN python -m pip wheel --require-hashes --only-binary=:all: --no-deps \
        --wheel-dir /wheels -r requirements/runtime.lock \
    && python -m pip install --require-hashes --only-binary=:all: --no-deps \
        --target /build-backend -r requirements/build.lock
COPY pyproject.toml README.md ./
COPY operator/ operator/
# Our wheel, built offline with the pinned backend (no build isolation fetching others).
RUN PYTHONPATH=/build-backend python -m pip wheel --no-index --no-deps \
        --no-build-isolation --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
# HOME=/tmp: user 65532 has no passwd entry, and /tmp is the writable emptyDir in Kubernetes.
ENV HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# Install from the build stage's wheels only (hashes checked again against the lock),
# without copying them into a layer; then remove pip (and ensurepip's bundled copy): the
# image runs the operator and the relay, it installs nothing.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    --mount=type=bind,from=build,source=/src/requirements,target=/requirements \
    python -m pip install --no-index --find-links=/wheels --require-hashes --no-deps \
        -r /requirements/runtime.lock \
    && python -m pip install --no-index --no-deps /wheels/pagerbridge-*.whl \
    && pagerbridge --help > /dev/null \
    && python -c 'import glob, importlib.util as u, os, shutil, sys; \
dirs = [os.path.dirname(s.origin) for m in ("pip", "ensurepip") if (s := u.find_spec(m)) and s.origin]; \
[shutil.rmtree(p) for d in dirs for p in [d, *glob.glob(d + "-*.dist-info")]]; \
[os.remove(w) for n in ("pip", "pip3", "pip%d.%d" % sys.version_info[:2]) if (w := shutil.which(n))]' \
    && ! python -m pip --version 2> /dev/null
# Writable and mounted paths, owned by the runtime user. In Kubernetes the root filesystem
# is read-only and these are volumes (see controller/names.py):
#   /var/lib/pagerbridge        the relay's outbox (emptyDir or PersistentVolumeClaim)
#   /etc/pagerbridge/config     the RelayConfig (ConfigMap)
#   /etc/pagerbridge/secrets    one directory per mounted Secret
#   /tmp                        emptyDir
RUN mkdir -p /var/lib/pagerbridge /etc/pagerbridge/config /etc/pagerbridge/secrets \
    && chown -R 65532:65532 /var/lib/pagerbridge \
    && chmod 0750 /var/lib/pagerbridge
WORKDIR /var/lib/pagerbridge
USER 65532:65532
# Operator: 8080 /metrics, 8081 /healthz (liveness). Relay: 8080 the two webhooks (public),
# 9090 /healthz, /readyz, /metrics, /openapi.json and the admin API (internal).
EXPOSE 8080 8081 9090
ENTRYPOINT ["pagerbridge"]
CMD ["operator"]
