# syntax=docker/dockerfile:1
# The modelpier image: control plane (`pier server`), gateway (`pier gateway`), operator
# (`pier operator`) and model server (`pier serve`, also the init container that pulls models).
# Build: docker build -t ghcr.io/modelpier/modelpier:0.1.0 .
# Smaller image: --build-arg EXTRAS=kubernetes,s3,postgres (no ML runtimes).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=kubernetes,s3,postgres,sklearn,xgboost,lightgbm,onnx
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/venv/bin/pip install --no-cache-dir ".[${EXTRAS}]"

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="modelpier" \
      org.opencontainers.image.description="Model registry, serving and deployments: control plane, gateway, operator, model server" \
      org.opencontainers.image.source="https://github.com/modelpier/modelpier" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed uid/gid (10001) that the Kubernetes manifests name in runAsUser, so runAsNonRoot can be checked.
RUN groupadd --system --gid 10001 pier \
    && useradd --system --uid 10001 --gid pier --home-dir /var/lib/modelpier --shell /usr/sbin/nologin pier \
    && mkdir -p /var/lib/modelpier \
    && chown pier:pier /var/lib/modelpier
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIER_HOME=/var/lib/modelpier \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/modelpier
# 8080/8081: model server HTTP/gRPC; 8600: control plane; 8700: gateway.
EXPOSE 8080 8081 8600 8700
ENTRYPOINT ["pier"]
CMD ["server", "--host", "0.0.0.0", "--port", "8600"]
