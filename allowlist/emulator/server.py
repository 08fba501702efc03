"""A local Azure Resource Manager on 127.0.0.1 over HTTPS, for tests, the demo and benchmarks.

with Emulator(state) as emu:
    emu.base_url, emu.ca_path   # give these to the real Azure SDK clients
    emu.requests                # every request: method, path, status, time
    emu.state.snapshot()        # the firewalls now
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from email.utils import formatdate
from functools import lru_cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson
import trustme

from allowlist.emulator.faults import FaultConfig, Faults
from allowlist.emulator.http import ArmError, Request, Response, Router
from allowlist.emulator.lro import Operations
from allowlist.emulator.providers import (
    accounts,
    flexible,
    keyvault,
    network,
    redis,
    resourcegraph,
    sql,
    subscriptions,
    tags,
    web,
)
from allowlist.emulator.state import MYSQL, POSTGRESQL, State


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str  # without the query
    query: str
    status: int  # 0 for a dropped connection
    at: float  # time.monotonic() when the answer went out
    duration: float
    action: str = ""  # the RBAC action the operation needs, when the path matched one


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    emulator: Emulator

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs in the request's own thread, so a slow client cannot stall accept().
        try:
            tls = self.emulator._tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        with self.emulator._log_lock:
            self.emulator.connections += 1
        try:
            super().finish_request(tls, client_address)
        finally:
            with contextlib.suppress(OSError):
                tls.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # error answers still go out in more than one write
    server: _TlsServer
    fields: dict[str, str]  # the request's header fields, names in lower case
    raw_requestline: bytes  # read by handle_one_request before parse_request

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the emulator keeps its own request log

    def parse_request(self) -> bool:
        """The request line and header fields, read plainly: http.server parses fields with the email
        package, which was a fifth of the emulator's CPU per request, and the benchmark's client shares
        the machine with it."""
        words = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n").split()
        self.requestline = " ".join(words)
        self.close_connection = True
        if len(words) != 3 or not words[2].startswith("HTTP/1."):
            self.send_error(400, f"Bad request line {self.requestline!r}")
            return False
        self.command, self.path, self.request_version = words
        fields: dict[str, str] = {}
        for _ in range(200):
            line = self.rfile.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                break
            name, colon, value = line.decode("iso-8859-1").partition(":")
            if not colon:
                self.send_error(400, "Bad header field")
                return False
            fields[name.strip().lower()] = value.strip()
        else:
            self.send_error(431, "Too many header fields")
            return False
        self.fields = fields
        connection = fields.get("connection", "").lower()
        http10 = self.request_version == "HTTP/1.0"
        self.close_connection = connection == "close" or (http10 and connection != "keep-alive")
        return True

    def do_GET(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        started = time.monotonic()
        emu = self.server.emulator
        url = urlsplit(self.path)
        length = int(self.fields.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(
            method=self.command,
            path=url.path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers=self.fields,
            body=body,
            base_url=emu.base_url,
        )
        response, action = emu.handle(request)
        if response is None:  # a dropped connection
            emu._log(request, url.query, 0, started, action)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        payload = b"" if response.body is None else orjson.dumps(response.body)  # C: this stands in for ARM
        emu._log(
            request, url.query, response.status, started, action
        )  # before the answer, so a client never outruns it
        head = [
            f"HTTP/1.1 {response.status} {_reason(response.status)}",
            f"Date: {_http_date()}",
            "Content-Type: application/json; charset=utf-8",
            f"Content-Length: {len(payload)}",
            f"x-ms-request-id: emulator-{len(emu.requests)}",
            *(f"{name}: {value}" for name, value in response.headers.items()),
        ]
        # One write, so one TLS record and no delayed-ACK stall between the head and the body.
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)


def _in_flight(logged: list[LoggedRequest]) -> tuple[float, float]:
    """The span of these requests (first read to last answer, seconds) and how many were served at once on
    average over it (from request read to answer)."""
    if not logged:
        return 0.0, 0.0
    span = max(r.at for r in logged) - min(r.at - r.duration for r in logged)
    served = sum(r.duration for r in logged)
    return round(span, 3), round(served / span, 2) if span > 0 else 0.0


@lru_cache(maxsize=64)
def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


_date = (0, "")


def _http_date() -> str:
    """The Date field, made once a second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, formatdate(now, usegmt=True))
    return _date[1]


STATS_PATH = "/_emulator/stats"  # GET, no token: request counts (`?reset=1` clears them); not an ARM path


class Emulator:
    """An emulated ARM endpoint. Use as a context manager, or call start() and stop()."""

    def __init__(
        self,
        state: State,
        *,
        port: int = 0,
        page_size: int = 50,
        faults: FaultConfig | None = None,
        ca_dir: Path | None = None,
        accepted_tokens: frozenset[str] | None = None,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.state = state
        self.accepted_tokens = accepted_tokens  # None: any non-empty bearer token
        self.faults = Faults(faults or FaultConfig())
        self.requests: list[LoggedRequest] = []
        self.connections = 0  # TLS handshakes completed: how well clients keep connections alive
        self.operations = Operations()
        # Tests: called with each request before it is answered, to make something happen at that moment
        # (a person's edit landing between a client's read and its write).
        self.hooks: list[Callable[[Request], None]] = []
        self.router = Router()
        for simple in (subscriptions, sql):
            self.router.add(simple.routes(page_size))
        self.router.add(web.routes(page_size, self._write_fails))
        for flexible_type in (POSTGRESQL, MYSQL):
            self.router.add(flexible.routes(flexible_type, page_size, self.operations, self._write_fails))
        self.router.add(accounts.routes(self._write_fails))
        self.router.add(tags.routes())
        self.router.add(network.routes(page_size))
        self.router.add(resourcegraph.routes())
        self.router.add(redis.routes(page_size, self._write_fails))
        self.router.add(keyvault.routes(self._write_fails))
        self._port = port
        self._ca_dir = ca_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: _TlsServer | None = None
        self._thread: threading.Thread | None = None
        self._log_lock = threading.Lock()
        self._tls = self._make_tls()

    def _make_tls(self) -> ssl.SSLContext:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        if self._ca_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="allowlist-emulator-")
            self._ca_dir = Path(self._tmp.name)
        self._ca_dir.mkdir(parents=True, exist_ok=True)
        self.ca_path = self._ca_dir / "emulator-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_path))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        return context

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Emulator:
        server = _TlsServer(("127.0.0.1", self._port), _Handler)
        server.emulator = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="arm-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    # -- requests ------------------------------------------------------------------------------

    def handle(self, request: Request) -> tuple[Response | None, str]:
        """Answer one request (None: drop the connection), with the RBAC action it needed."""
        if self.faults.config.latency_ms:
            time.sleep(self.faults.config.latency_ms / 1000)
        action = ""
        if request.path == STATS_PATH:  # for benchmarks that run the emulator as its own process
            return Response(200, self.stats(reset=request.query.get("reset") == "1")), ""
        self.operations.settle(self.state)
        for hook in list(self.hooks):
            hook(request)
        try:
            self._authenticate(request, self.accepted_tokens)
            if not request.query.get("api-version"):
                raise ArmError(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required.",
                )
            matched, params = self.router.match(request.method, request.path)
            action = matched.action
            if self.faults.should_drop(request.method, request.path):
                return None, action
            remaining = self.faults.throttle(request.method, request.path)
            self.faults.forbidden(request.path, matched.action)
            self.faults.server_error(request.method, request.path)
            bound = replace(request, params={k: unquote(v) for k, v in params.items()})
            answer = matched.handler(bound, self.state)
            answer.headers.update(remaining)
            return answer, action
        except ArmError as err:
            return err.response(), action
        except Exception as exc:  # an emulator bug answers 500 with its name, never a silent hang-up
            return ArmError(500, "EmulatorError", f"{type(exc).__name__}: {exc}").response(), action

    def _write_fails(self, request: Request) -> bool:
        """Whether a long-running write started now ends Failed (fault `lro-fail`)."""
        return self.faults.operation_fails(request.method, request.path)

    @staticmethod
    def _authenticate(request: Request, accepted: frozenset[str] | None) -> None:
        """Any non-empty bearer token is accepted unless `accepted` names the only good ones."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/common"'}
        if scheme.lower() != "bearer":
            raise ArmError(
                401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.", challenge
            )
        if not token.strip() or (accepted is not None and token.strip() not in accepted):
            raise ArmError(401, "InvalidAuthenticationToken", "The access token is invalid.", challenge)

    def _log(self, request: Request, query: str, status: int, started: float, action: str) -> None:
        now = time.monotonic()
        with self._log_lock:
            self.requests.append(LoggedRequest(request.method, request.path, query, status, now, now - started, action))

    def count(self, method: str | None = None, path_contains: str = "") -> int:
        """How many requests were answered, optionally of one method and with a path fragment."""
        with self._log_lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method) and path_contains.lower() in r.path.lower()
            )

    def stats(self, reset: bool = False) -> dict[str, Any]:
        """Counts of the requests answered so far (not this one), by method and status."""
        with self._log_lock:
            logged = [r for r in self.requests if r.path != STATS_PATH]
            connections = self.connections
            if reset:
                self.requests.clear()
                self.connections = 0
        by_status: dict[str, int] = {}
        by_method: dict[str, int] = {}
        for r in logged:
            by_status[str(r.status)] = by_status.get(str(r.status), 0) + 1
            by_method[r.method] = by_method.get(r.method, 0) + 1
        # How many requests were in the emulator at once, on average: a client that keeps its writers busy
        # shows its concurrency here; one that stalls between requests shows less. The same over the span
        # from the first PUT or DELETE read to the last one answered: an apply's writing, apart from its
        # plan and its leases (which PATCH tags).
        writes_span, writes_in_flight = _in_flight([r for r in logged if r.method in ("PUT", "DELETE")])
        # Every write, leases' tag PATCHes included: an apply's write phase as the service sees it.
        all_writes_span = _in_flight([r for r in logged if r.method not in ("GET", "HEAD")])[0]
        return {
            "requests": len(logged),
            "by_status": by_status,
            "by_method": by_method,
            "connections": connections,
            "mean_in_flight": _in_flight(logged)[1],
            "mean_ms": round(1000 * sum(r.duration for r in logged) / len(logged), 2) if logged else 0.0,
            "writes_span": writes_span,
            "all_writes_span": all_writes_span,
            "writes_in_flight": writes_in_flight,
        }

    def reset_log(self) -> None:
        with self._log_lock:
            self.requests.clear()
