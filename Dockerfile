FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY streams ./streams
COPY sinks ./sinks
COPY alerting ./alerting
COPY ingest ./ingest
COPY sdk ./sdk
RUN pip install --no-cache-dir . ./sdk
USER nobody
ENTRYPOINT []
CMD ["spendwatch", "worker"]
