# syntax=docker/dockerfile:1
# model-exporter: a multi-stage build; the runtime image holds only the installed package.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip install --no-cache-dir --upgrade pip==25.3 \
    && pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="model-exporter" \
      org.opencontainers.image.description="Prometheus exporter sidecar for ML model quality and drift"
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --no-create-home exporter \
    && mkdir -p /var/lib/model-exporter && chown 10001 /var/lib/model-exporter
# Snapshots of the state (windows, joins, references) when MODEL_EXPORTER_STATE__PATH points
# here: mount a volume on it to keep them across container restarts.
VOLUME ["/var/lib/model-exporter"]
USER 10001
EXPOSE 17090
# One worker: the state is in this process's memory (see README, "Several replicas").
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:17090/-/healthy', timeout=2).status != 200)"]
ENTRYPOINT ["model-exporter"]
CMD ["serve"]
