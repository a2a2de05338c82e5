# riskstream worker image (docs/streaming.md). Default command: a Kafka scorer worker; any
# other riskstream command works too, e.g. `docker run IMAGE produce --rate 500 --count 0`.
#
#   docker build -t riskstream .
#   docker compose -f deploy/docker-compose.yml up -d
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# Wheels only (confluent-kafka bundles librdkafka; numba/llvmlite ship manylinux wheels).
RUN pip install --no-cache-dir --prefix=/install ".[kafka,redis,postgres]"

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 riskstream && mkdir /data && chown riskstream /data
COPY --from=build /install /usr/local
USER riskstream
WORKDIR /home/riskstream
# /data: model registry, SQLite fallback, per-partition state snapshots (in-memory state).
# One thread per numeric library: a worker is one scoring thread; scale with more workers.
ENV RISKSTREAM_HOME=/data \
    RISKSTREAM_HOST=0.0.0.0 \
    RISKSTREAM_PORT=8000 \
    OMP_NUM_THREADS=1 \
    NUMBA_NUM_THREADS=1 \
    PYTHONUNBUFFERED=1
VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"
# The worker handles SIGTERM itself (finishes its batch, commits, checkpoints, leaves the group).
STOPSIGNAL SIGTERM
ENTRYPOINT ["riskstream"]
CMD ["worker"]
