"""A real SMTP server (aiosmtpd) on loopback that keeps what it receives, for tests.

    with SmtpServer() as smtp:                      # 127.0.0.1, free port, own thread
        ... send to smtp.host / smtp.port ...
        smtp.messages[0].message["Subject"]         # parsed EmailMessage
        smtp.messages[0].text, .html                # the two alternative parts

Options: ``auth=("user", "password")`` requires AUTH (PLAIN/LOGIN, allowed without TLS on
loopback); ``starttls=True`` offers STARTTLS with a throw-away self-signed certificate made
by the ``openssl`` binary (``require_starttls=True`` refuses mail before it).

Failures are scripted in order for the next DATA commands::

    smtp.script(SmtpReply("451 4.3.0 Try again later"), SmtpReply("554 5.7.1 Rejected"))
    smtp.script(SmtpReply(drop=True))               # close the connection instead

``reject_rcpt`` refuses given recipient addresses (``550 5.1.1``). A message is recorded in
``messages`` only when accepted; every DATA attempt is in ``attempts``.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import ssl
import subprocess
import tempfile
import threading
import warnings
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from streams.broker import free_port


@dataclass(frozen=True)
class SmtpReply:
    """One scripted DATA answer: an SMTP reply line, or ``drop`` the connection."""

    line: str = "250 Message accepted for delivery"
    drop: bool = False


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage
    login: str | None

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        if body is None:
            raise KeyError(f"no text/{subtype} part")
        content = body.get_content()  # type: ignore[attr-defined]
        return str(content).replace("\r\n", "\n")  # SMTP carries CRLF line ends

    @property
    def text(self) -> str:
        return self.part("plain")

    @property
    def html(self) -> str:
        return self.part("html")


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.server.reject_rcpt:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        reply = self.server._next_reply()
        content = envelope.original_content or envelope.content or b""
        raw = content.encode() if isinstance(content, str) else bytes(content)
        self.server.attempts.append(reply.line if not reply.drop else "drop")
        if reply.drop:
            if smtp.transport is not None:
                smtp.transport.close()
            return "421 4.3.2 Closing connection"
        if reply.line.startswith("250"):
            login = session.auth_data.login.decode() if session.auth_data else None
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            self.server.messages.append(
                ReceivedMail(
                    mail_from=str(envelope.mail_from),
                    rcpt_tos=tuple(envelope.rcpt_tos),
                    raw=raw,
                    message=msg,
                    login=login,
                )
            )
        return reply.line


class SmtpServer:
    """See the module docstring. ``start()``/``stop()`` or use as a context manager."""

    def __init__(
        self,
        *,
        auth: tuple[str, str] | None = None,
        starttls: bool = False,
        require_starttls: bool = False,
        reject_rcpt: tuple[str, ...] = (),
    ) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.auth = auth
        self.starttls = starttls or require_starttls
        self.require_starttls = require_starttls
        self.reject_rcpt = set(reject_rcpt)
        self.messages: list[ReceivedMail] = []
        self.attempts: list[str] = []
        self._script: deque[SmtpReply] = deque()
        self._lock = threading.Lock()
        self._controller: Controller | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def script(self, *replies: SmtpReply) -> None:
        with self._lock:
            self._script.extend(replies)

    def _next_reply(self) -> SmtpReply:
        with self._lock:
            return self._script.popleft() if self._script else SmtpReply()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            self.auth is not None
            and isinstance(data, LoginPassword)
            and (data.login.decode(), data.password.decode()) == self.auth
        )
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    def _tls_context(self) -> ssl.SSLContext:
        self._tmp = tempfile.TemporaryDirectory(prefix="smtp-tls-")
        cert, key = Path(self._tmp.name, "cert.pem"), Path(self._tmp.name, "key.pem")
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
        )
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        return ctx

    def start(self) -> SmtpServer:
        # AUTH without TLS is fine on loopback; aiosmtpd warns about it on every connection.
        warnings.filterwarnings(
            "ignore", message="Requiring AUTH while not requiring TLS", category=UserWarning
        )
        kwargs: dict[str, Any] = {}
        if self.auth is not None:
            kwargs.update(
                authenticator=self._authenticate, auth_required=True, auth_require_tls=False
            )
        if self.starttls:
            kwargs.update(tls_context=self._tls_context(), require_starttls=self.require_starttls)
        last: Exception | None = None
        for _ in range(5):  # a "free" port can be taken between probe and bind
            self.port = free_port()
            controller = Controller(_Handler(self), hostname=self.host, port=self.port, **kwargs)
            try:
                controller.start()
            except (OSError, RuntimeError) as exc:
                last = exc
                continue
            self._controller = controller
            return self
        raise RuntimeError(f"could not start the SMTP test server: {last}")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
