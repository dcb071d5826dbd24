# The spendwatch worker: the pipeline and the SDK, run as an unprivileged user.
#   docker build -t spendwatch .     (docker-compose.yml builds it as the `worker` service)
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY streams ./streams
COPY sinks ./sinks
COPY alerting ./alerting
COPY ingest ./ingest
COPY sdk ./sdk
RUN pip install --no-cache-dir . ./sdk

# The worker writes only under its working directory: its state (alert delivery log,
# silences; chDB files when the DSN is embedded) and Faust's data directory
# (spendwatch-data/). Both live in /var/lib/spendwatch, created here and owned by the user.
RUN groupadd --system --gid 10001 spendwatch \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/spendwatch \
      --shell /usr/sbin/nologin spendwatch \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/spendwatch

WORKDIR /var/lib/spendwatch
ENV SPENDWATCH_STATE_DIR=/var/lib/spendwatch
# Numeric, so a runtime that refuses root (runAsNonRoot) can check it.
USER 10001:10001
# Each container gets its own state (a replica keeps its own delivery log).
VOLUME ["/var/lib/spendwatch"]

ENTRYPOINT []
CMD ["spendwatch", "worker", "--config", "/etc/spendwatch/spendwatch.toml"]
