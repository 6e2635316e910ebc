# aws-anomaly service image: `docker build -t aws-anomaly .`
# Runs `aws-anomaly serve` as an unprivileged user; mount a settings file at
# /etc/aws-anomaly/settings.yaml and a volume at /var/lib/aws-anomaly for state and models.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home /var/lib/aws-anomaly aws-anomaly \
    && mkdir -p /var/lib/aws-anomaly /etc/aws-anomaly \
    && chown aws-anomaly /var/lib/aws-anomaly
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
WORKDIR /var/lib/aws-anomaly
ENV AWS_ANOMALY__SERVICE__DATA_DIR=/var/lib/aws-anomaly \
    PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=120s \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"
ENTRYPOINT ["aws-anomaly", "serve"]
CMD ["--config", "/etc/aws-anomaly/settings.yaml"]
