# aws-anomaly service image. `make image` builds it under the name and tag the Helm chart pulls
# by default (deploy/helm/aws-anomaly: image.repository, appVersion); docs/deploy.md.
# Runs `aws-anomaly serve` as an unprivileged user; mount a settings file at
# /etc/aws-anomaly/settings.yaml and a volume at /var/lib/aws-anomaly for state and models.
# The build context is only what .dockerignore lets through: pyproject.toml, README.md, src/.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# The package and every dependency as wheels, so the runtime stage needs no compiler.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="aws-anomaly" \
      org.opencontainers.image.description="Anomaly detection for AWS and EKS cluster metrics" \
      org.opencontainers.image.licenses="MIT"
RUN useradd --system --uid 10001 --home /var/lib/aws-anomaly aws-anomaly \
    && mkdir -p /var/lib/aws-anomaly /etc/aws-anomaly \
    && chown aws-anomaly /var/lib/aws-anomaly
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
USER 10001
WORKDIR /var/lib/aws-anomaly
ENV AWS_ANOMALY__SERVICE__DATA_DIR=/var/lib/aws-anomaly \
    PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=120s \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["aws-anomaly", "serve"]
CMD ["--config", "/etc/aws-anomaly/settings.yaml"]
