# syntax=docker/dockerfile:1
# PagerBridge image: one Python distribution, two programs.
#   docker run IMAGE                 -> pagerbridge operator   (the Helm chart's Deployment)
#   docker run IMAGE relay --config  -> pagerbridge relay      (the operator's relay Deployments)
#
# Stage 1 builds wheels for the project and its runtime dependencies; stage 2 installs
# only those wheels (no compilers, no build tools, no test or lint extras) and runs as the
# numeric non-root user 65532, so Kubernetes' runAsNonRoot can verify it.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
# `pip wheel .` builds the project's wheel plus a wheel of every runtime dependency
# (the [project.dependencies] of pyproject.toml; the optional test/lint extras are not built).
RUN python -m pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
# HOME=/tmp: user 65532 has no passwd entry, and /tmp is the writable emptyDir in Kubernetes.
ENV HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# Install from the build stage's wheels only, without copying them into a layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-index --find-links=/wheels /wheels/pagerbridge-*.whl \
    && pagerbridge --help > /dev/null
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
# Operator: 8080 /metrics, 8081 /healthz (liveness). Relay: 8080 webhooks, /healthz, /readyz, /metrics.
EXPOSE 8080 8081
ENTRYPOINT ["pagerbridge"]
CMD ["operator"]
