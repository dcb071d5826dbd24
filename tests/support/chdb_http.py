"""A loopback ClickHouse HTTP interface over one chDB path, so several processes share it.

One chDB data directory belongs to one process (``sinks/client.py``), so two workers on the
embedded engine cannot share a store - and exactly-once across workers needs one store: a
partition that moves from one worker to the other must find the rows its first owner wrote.
This process opens the path and answers the subset of ClickHouse's HTTP interface that
``clickhouse-connect``'s HTTP client uses (query in the URL or the body, multipart form for
long bind parameters, settings and ``param_*`` in the URL, Native inserts with an lz4/zstd/gzip
body, ``X-ClickHouse-Exception-Code`` on errors). Workers reach it with
``dsn = "http://127.0.0.1:<port>"``, the same path a ClickHouse server takes.

    python -m tests.support.chdb_http --path DIR --port N

For tests and ``make chaos`` only; bind it to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import json
import os
import re
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import chdb
from clickhouse_connect.driver._backend.chdb_backend import _decompress

# URL parameters that are transport, not engine settings
TRANSPORT = frozenset(
    {
        "query",
        "database",
        "default_format",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "quota_key",
        "compress",
        "decompress",
        "wait_end_of_query",
        "client_protocol_version",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "enable_http_compression",
        "buffer_size",
        "role",
        "user",
        "password",
    }
)
_INSERT_HEAD = re.compile(rb"^\s*INSERT\s+INTO\s+(.+?)\s+FORMAT\s+(\w+)[ \t]*\r?\n", re.I | re.S)
_FORMAT_TAIL = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.I)
_CODE = re.compile(r"Code:\s*(\d+)")


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Engine:
    """The chDB path; one connection handle per request (settings stay per request)."""

    def __init__(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)
        self.conn_str = os.path.realpath(path)
        self.keep = chdb.connect(self.conn_str)  # holds the engine open between requests
        self.lock = threading.Lock()

    def run(
        self,
        sql: str,
        fmt: str,
        database: str | None,
        settings: dict[str, str],
        params: dict[str, str],
    ) -> bytes:
        conn = chdb.connect(self.conn_str)
        try:
            if database:
                conn.query(f"USE `{database}`", "TabSeparated")
            # readonly last: once set, no other setting may change
            for key in sorted(settings, key=lambda k: k == "readonly"):
                conn.query(f"SET {key} = {_quote(settings[key])}", "TabSeparated")
            result = conn.query(sql, fmt, params=params or None)
            data = result.bytes() if hasattr(result, "bytes") else bytes(result)
            return data or b""
        finally:
            conn.close()


class Handler(BaseHTTPRequestHandler):
    engine: Engine
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._handle(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            body = self.rfile.read(length) if length else b""
        encoding = self.headers.get("Content-Encoding")
        if body and encoding and encoding != "identity":
            body = _decompress(body, encoding)
        self._handle(body)

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self, body: bytes) -> None:
        url = urlsplit(self.path)
        if url.path == "/ping":
            self._reply(200, b"Ok.\n", {})
            return
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("multipart/form-data"):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {ctype}\r\n\r\n".encode() + body
            )
            for part in message.iter_parts():  # type: ignore[attr-defined]
                name = str(part.get_param("name", header="content-disposition"))
                payload = part.get_payload(decode=True)
                query[name] = payload.decode() if isinstance(payload, bytes) else str(payload)
            body = b""
        params = {k[6:]: v for k, v in query.items() if k.startswith("param_")}
        settings = {
            k: v for k, v in query.items() if k not in TRANSPORT and not k.startswith("param_")
        }
        try:
            sql, data = self._statement(query.get("query"), body)
            fmt_match = _FORMAT_TAIL.search(sql) if data is None else None
            fmt = fmt_match.group(1) if fmt_match else query.get("default_format", "TabSeparated")
            if data is not None:
                out = self._insert(sql, data, query.get("database"), settings)
                headers = {"X-ClickHouse-Summary": json.dumps({"written_rows": "0"})}
            else:
                out = self.engine.run(sql, fmt, query.get("database"), settings, params)
                headers = {"X-ClickHouse-Format": fmt, "Content-Type": "application/octet-stream"}
                headers["X-ClickHouse-Summary"] = json.dumps({"read_rows": "0"})
            headers["X-ClickHouse-Timezone"] = "UTC"
            self._reply(200, out, headers)
        except Exception as exc:  # every engine error goes back as ClickHouse sends it
            text = str(exc)
            at = text.find("Code: ")
            text = text[at:] if at >= 0 else f"Code: 1000. DB::Exception: {text}"
            code = _CODE.search(text)
            self._reply(
                500,
                text.encode(),
                {"X-ClickHouse-Exception-Code": code.group(1) if code else "1000"},
            )

    @staticmethod
    def _statement(url_query: str | None, body: bytes) -> tuple[str, bytes | None]:
        """``(sql, insert data or None)``."""
        if url_query:
            if body and re.match(r"^\s*INSERT\b", url_query, re.I):
                return url_query, body
            return (url_query + (" " + body.decode() if body else "")), None
        head = _INSERT_HEAD.match(body)
        if head:
            return body[: head.end()].decode().strip(), body[head.end() :]
        return body.decode(), None

    def _insert(
        self, sql: str, data: bytes, database: str | None, settings: dict[str, str]
    ) -> bytes:
        head = _INSERT_HEAD.match((sql + "\n").encode())
        if head is None:
            raise ValueError(f"Code: 62. DB::Exception: cannot parse insert {sql[:200]!r}")
        target, fmt = head.group(1).decode(), head.group(2).decode()
        with tempfile.NamedTemporaryFile(suffix=".native", delete=False) as tmp:
            tmp.write(data)
        try:
            infile = f"INSERT INTO {target} FROM INFILE {_quote(tmp.name)} FORMAT {fmt}"
            return self.engine.run(infile, "TabSeparated", database, settings, {})
        finally:
            os.unlink(tmp.name)


def serve(path: str, port: int) -> None:
    Handler.engine = Engine(path)
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"chdb-http on 127.0.0.1:{port} over {path}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    serve(args.path, args.port)
