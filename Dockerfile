# gateway-proxy container image.
#   docker build -t gateway-proxy:0.1.0 .
#   docker run --rm -p 8080:8080 -p 8081:8081 --read-only --tmpfs /tmp \
#     -e MM7_BASIC_AUTH=... gateway-proxy:0.1.0
# Two stages: the builder installs the project and its dependencies into a venv; the
# runtime stage gets only that venv and the default config. No compilers, no pip cache.
# `make image` builds it with podman (scripts/build-image.sh); `make image-test` builds it
# on a local Debian base and runs it (tests/test_image.py).

# Pinned base (bump deliberately; pin by digest too in your own registry mirror). Any
# Debian-like image with python3 >= 3.11, its venv module and CA certificates works: both
# stages use it, and the build calls `python3`, never `python`.
ARG BASE_IMAGE=docker.io/library/python:3.11.13-slim-bookworm

FROM ${BASE_IMAGE} AS builder

# Where pip looks and which CAs it trusts, for builds behind a mirror or a TLS-inspecting
# proxy (scripts/build-image.sh passes the host's). Builder-stage ARGs never reach the
# runtime image: neither its environment nor its history.
ARG PIP_INDEX_URL
ARG PIP_CERT

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python3 -m venv /opt/venv

WORKDIR /src
# The dependencies first, read from pyproject.toml alone: this layer (the slow one, with
# the downloads) is rebuilt only when pyproject.toml changes, not on every code change.
# The build backend's wheels are fetched here too, so the project's own install below
# needs no network.
COPY pyproject.toml ./
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['build-system']['requires']))" \
        > /tmp/build-requirements.txt \
    && pip download --no-cache-dir --dest /wheels -r /tmp/build-requirements.txt

# The image's default config is the repo's, with both ports on all interfaces: inside a
# container 127.0.0.1 is unreachable from outside. The build fails if the lines moved.
COPY config/gateway-proxy.yaml /tmp/gateway-proxy.yaml
RUN mkdir -p /out \
    && sed -E 's/^(listen|admin_listen):( +)127\.0\.0\.1:/\1:\20.0.0.0:/' \
        /tmp/gateway-proxy.yaml > /out/gateway-proxy.yaml \
    && grep -Eq '^listen: +0\.0\.0\.0:8080' /out/gateway-proxy.yaml \
    && grep -Eq '^admin_listen: +0\.0\.0\.0:8081' /out/gateway-proxy.yaml

# Only what the wheel needs: the readme its metadata names, the package, and every file
# pyproject.toml's [tool.hatch.build.targets.wheel.force-include] embeds (the built-in
# catalog, the demo config). tests/test_dockerfile.py checks this list against pyproject.toml.
COPY README.md ./
COPY config/codes.yaml config/codes.yaml
COPY config/demo.yaml config/demo.yaml
COPY proxy/ proxy/
# Non-editable install: the venv holds the package itself, not a link back to /src.
RUN pip install --no-cache-dir --no-deps --no-index --find-links=/wheels . \
    && gateway-proxy --version


FROM ${BASE_IMAGE} AS runtime

# No .pyc writes at run time (the root filesystem is read-only; pip compiled them at build).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEWAY_PROXY_CONFIG=/etc/gateway-proxy/gateway-proxy.yaml

# A fixed numeric UID/GID, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
RUN groupadd --system --gid 10001 gateway-proxy \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin gateway-proxy

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /out/gateway-proxy.yaml /etc/gateway-proxy/gateway-proxy.yaml

# Nothing in the image is writable by the proxy; /tmp is the only scratch space
# (docker run --read-only --tmpfs /tmp; an emptyDir in Kubernetes).
WORKDIR /tmp
USER 10001:10001

# 8080: app traffic. 8081: admin (/metrics, /healthz, /readyz).
EXPOSE 8080 8081

# For `docker run` and compose; Kubernetes ignores it and uses the chart's probes.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/healthz', timeout=2)"]

# SIGTERM: /readyz turns false, in-flight requests drain for shutdown.drain_seconds.
STOPSIGNAL SIGTERM
ENTRYPOINT ["gateway-proxy"]
CMD ["serve", "--config", "/etc/gateway-proxy/gateway-proxy.yaml"]

# Last, so that a new revision or date rebuilds no layer.
ARG BASE_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="gateway-proxy" \
      org.opencontainers.image.description="Async reverse proxy that turns MM7 and MoMS gateway answers into one JSON envelope, with Prometheus metrics per code." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/gateway-proxy/gateway-proxy" \
      org.opencontainers.image.documentation="https://github.com/gateway-proxy/gateway-proxy#deployment" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
