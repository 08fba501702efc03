"""The event loop's HTTP/1.1 client (http11) against a TLS server that sends scripted bytes: the answer
forms ARM and the proxies before it may use, kept-alive connections, and how broken answers fail."""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Iterable, Iterator

import pytest
import trustme

from allowlist.http11 import ConnectFailed, ConnectTimedOut, Http11Pool, ReadTimedOut, ResponseBroken
from tests.sockets import accept_forever

Script = Callable[[bytes], Iterable[bytes | None] | None]  # a request -> its writes back; None: close the connection


class ScriptedServer:
    """Reads each request whole (head and Content-Length body), answers with script(request): each item
    is one write, and None (for the whole answer, or after some writes) closes the connection."""

    def __init__(self, script: Script, ca: trustme.CA) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.connections = 0
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(self.context)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        accept_forever(self.sock, self._serve)

    def _serve(self, raw: socket.socket) -> None:
        self.connections += 1
        try:
            conn = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            return
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                request, buffer = head + b"\r\n\r\n" + buffer[:length], buffer[length:]
                self.requests.append(request)
                for part in self.script(request) or [None]:
                    if part is None:
                        return
                    conn.sendall(part)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def serve(ca: trustme.CA) -> Iterator[Callable[[Script], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(script: Script) -> ScriptedServer:
        servers.append(ScriptedServer(script, ca))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def exchange_all(
    ca: trustme.CA, url: str, calls: list[tuple[str, bytes | None]], timeout: float = 5.0
) -> list[tuple[int, str, dict[str, str], bytes] | Exception]:
    """Each (method, body) to url in turn over one pool; per call the answer (headers lower-cased) or what
    it raised."""

    async def run() -> list[tuple[int, str, dict[str, str], bytes] | Exception]:
        pool = Http11Pool(client_tls(ca), timeout)
        out: list[tuple[int, str, dict[str, str], bytes] | Exception] = []
        for method, body in calls:
            try:
                status, reason, fields, content = await pool.exchange(method, url, {"X-Test": "1"}, body)
                out.append((status, reason, {k.lower(): v for k, v in fields.items()}, content))
            except Exception as exc:
                out.append(exc)
            await asyncio.sleep(0.05)  # time for a close from the server to arrive
        pool.close()
        return out

    return asyncio.run(run())


def answer(body: bytes, *fields: str, status: str = "200 OK") -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *fields]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def test_answers_with_a_length_come_back_whole_over_one_kept_alive_connection(ca: trustme.CA, serve) -> None:  # type: ignore[no-untyped-def]
    body = b'{"value": [' + b'"x",' * 50_000 + b'"y"]}'
    whole = answer(body, "Content-Type: application/json")
    server = serve(lambda request: [whole[:7], whole[7:70_000], whole[70_000:]])
    results = exchange_all(ca, server.url + "/subscriptions?api-version=1", [("GET", None)] * 3)
    assert all(not isinstance(r, Exception) and r[0] == 200 and r[3] == body for r in results)
    assert server.connections == 1  # kept alive between them
    first = server.requests[0].decode()
    assert first.startswith("GET /subscriptions?api-version=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n" in first and "X-Test: 1\r\n" in first


def test_a_body_goes_out_with_its_length_once(ca: trustme.CA, serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(lambda request: [answer(b"", status="204 No Content")])

    async def run() -> list[int]:
        pool = Http11Pool(client_tls(ca), 5.0)
        framed = {"Content-Length": "8", "host": "elsewhere", "Accept-Encoding": "identity"}  # as azure-core sets
        answers = [await pool.exchange("PUT", server.url + "/r", framed, b'{"a": 1}'),
                   await pool.exchange("DELETE", server.url + "/r", {}, None)]  # fmt: skip
        pool.close()
        return [a[0] for a in answers]

    assert asyncio.run(run()) == [204, 204]
    put, delete = (r.decode().lower() for r in server.requests)
    assert put.count("content-length") == 1 and "content-length: 8\r\n" in put and put.endswith('{"a": 1}')
    assert put.count("host:") == 1 and f"host: 127.0.0.1:{server.port}" in put
    assert put.count("accept-encoding") == 1 and "accept-encoding: identity" in put
    assert "content-length" not in delete


def test_chunked_gzip_and_interim_answers_are_read(ca: trustme.CA, serve) -> None:  # type: ignore[no-untyped-def]
    payload = b'{"name": "rule"}' * 1000
    packed = gzip.compress(payload)
    half = len(packed) // 2
    chunked = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(part), part) for part in (packed[:half], packed[half:]))
    scripts = [
        [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
         b"Content-Encoding: gzip\r\n\r\n", chunked[:50], chunked[50:], b"0\r\nX-Trailer: 1\r\n\r\n"],
        [answer(zlib.compress(payload), "Content-Encoding: deflate")],
    ]  # fmt: skip
    server = serve(lambda request: scripts[len(server.requests) - 1])  # type: ignore[return-value]
    results = exchange_all(ca, server.url + "/x", [("GET", None), ("GET", None)])
    assert [r[3] for r in results if not isinstance(r, Exception)] == [payload, payload]
    assert server.connections == 1  # the chunked answer ended where its last chunk said
    assert "accept-encoding: gzip, deflate" in server.requests[0].decode().lower()


def test_a_body_that_ends_with_the_connection_is_read_and_the_connection_not_reused(ca: trustme.CA, serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(lambda request: [b"HTTP/1.1 200 OK\r\n\r\n", b"to the ", b"end", None])
    results = exchange_all(ca, server.url + "/x", [("GET", None), ("GET", None)])
    assert [r[3] for r in results if not isinstance(r, Exception)] == [b"to the end", b"to the end"]
    assert server.connections == 2


def test_a_connection_the_server_closed_after_its_answer_is_not_used_again(ca: trustme.CA, serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(lambda request: [answer(b"ok"), None])  # kept alive by its header, then closed
    results = exchange_all(ca, server.url + "/x", [("GET", None)] * 3)
    assert [r[3] for r in results if not isinstance(r, Exception)] == [b"ok"] * 3
    assert server.connections == 3


def test_broken_answers_fail_as_broken_not_as_answers(ca: trustme.CA, serve) -> None:  # type: ignore[no-untyped-def]
    cases: dict[str, list[bytes | None] | None] = {
        "/closed": None,
        "/short": [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", None],
        "/garbage": [b"SSH-2.0-OpenSSH\r\n\r\n"],
        "/length": [b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n"],
        "/chunk": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
        "/gzip": [b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc"],
        "/br": [b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 3\r\n\r\nabc"],
        "/gzip-to-close": [b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\nabc", None],
    }

    server = serve(lambda request: cases[request.split(b" ", 2)[1].decode()])
    for path in cases:
        (result,) = exchange_all(ca, server.url + path, [("GET", None)])
        assert isinstance(result, ResponseBroken) and not isinstance(result, ReadTimedOut), (path, result)


def test_a_silent_server_times_out_and_an_unreachable_one_fails_to_connect(ca: trustme.CA, serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(lambda request: [b""])  # reads the request, never answers
    (silent,) = exchange_all(ca, server.url + "/x", [("GET", None)], timeout=0.3)
    assert isinstance(silent, ReadTimedOut)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    (refused,) = exchange_all(ca, f"https://127.0.0.1:{port}/x", [("GET", None)])
    assert isinstance(refused, ConnectFailed) and isinstance(refused.__cause__, ConnectionRefusedError)
    (untrusted,) = exchange_all(trustme.CA(), server.url + "/x", [("GET", None)])
    assert isinstance(untrusted, ConnectFailed) and isinstance(untrusted.__cause__, ssl.SSLCertVerificationError)


def test_a_slow_but_steady_answer_is_not_a_read_timeout(ca: trustme.CA, serve) -> None:  # type: ignore[no-untyped-def]
    """The read timeout counts from the last bytes heard, not from the request."""

    def script(request: bytes) -> Iterator[bytes]:
        for part in [b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n", *(b"x" for _ in range(8))]:
            time.sleep(0.1)
            yield part

    server = serve(script)
    (result,) = exchange_all(ca, server.url + "/x", [("GET", None)], timeout=0.4)
    assert not isinstance(result, Exception) and result[3] == b"x" * 8  # 0.9 s in all, 0.1 s between bytes


def test_connecting_within_the_connect_timeout(ca: trustme.CA) -> None:
    """A listener that never accepts: the TLS handshake never completes."""
    sock = socket.create_server(("127.0.0.1", 0), backlog=1)
    try:

        async def run() -> Exception | None:
            pool = Http11Pool(client_tls(ca), 5.0)
            try:
                await pool.exchange("GET", f"https://127.0.0.1:{sock.getsockname()[1]}/x", {}, None, 0.3, 5.0)
            except Exception as exc:
                return exc
            return None

        assert isinstance(asyncio.run(run()), ConnectTimedOut)
    finally:
        sock.close()


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/x", "https://127.0.0.1/x y", "https://127.0.0.1/x\r\nX-Evil: 1", "https://127.0.0.1/é"],
)
def test_a_url_that_is_not_quoted_https_is_refused_before_anything_goes_out(ca: trustme.CA, url: str) -> None:
    (result,) = exchange_all(ca, url, [("GET", None)])
    assert isinstance(result, ValueError) and not isinstance(result, (ConnectFailed, ResponseBroken))
