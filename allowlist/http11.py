"""A small HTTP/1.1 client for the event loop's direct ARM calls: kept-alive TLS connections, one request
at a time on each, answers read whole.

Why not aiohttp for these: at 10,000 apps an apply makes about 27,000 rule writes and a plan reads about
60 MB of site lists, all from one loop thread. aiohttp's per-request machinery (request and response
objects, URL parsing, stream readers, timers) was about 0.2 ms of each write's 0.5 ms of loop CPU; this
client writes each request in one call and parses each answer from one buffer. It speaks only what ARM
needs: Content-Length or chunked bodies (or a body up to the close), gzip or deflate, and 1xx answers
skipped. Connections through a proxy stay with aiohttp (armloop), which tunnels them.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import zlib

from multidict import CIMultiDict, CIMultiDictProxy

Answer = tuple[int, str, CIMultiDictProxy[str], bytes]  # status, reason, header fields, body

_UNQUOTED = re.compile(r"[^\x21-\x7e]")  # what a quoted URL never holds: spaces, controls, non-ASCII
_FRAMING = frozenset({"host", "content-length", "transfer-encoding", "connection"})
MAX_HEAD = 65536  # bytes of status line and header fields: more is not an ARM answer


class ConnectFailed(Exception):
    """No connection: refused, unresolved, TLS refused, or timed out. The request never went out."""


class ConnectTimedOut(ConnectFailed):
    pass


class ResponseBroken(Exception):
    """The request went out, and the answer did not come back whole (a closed connection, a malformed
    answer, or a read timeout)."""


class ReadTimedOut(ResponseBroken):
    pass


def _no_body(method: str, status: int) -> bool:
    return method == "HEAD" or status in (204, 304)


class _Connection(asyncio.Protocol):
    """One kept-alive connection; its answer is parsed as bytes arrive, and handed over when whole."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.keep = True  # may carry another request after this answer
        self._timeout = 0.0  # the read timeout of the request in flight
        self._buffer = bytearray()
        self._waiter: asyncio.Future[Answer] | None = None
        self._method = ""
        self._head: tuple[int, str, list[tuple[str, str]]] | None = None
        self._length = -1  # body bytes still wanted; CHUNKED; TO_CLOSE
        self._chunks: list[bytes] = []
        self._encoding = ""
        self._heard = 0.0  # loop.time() when bytes last arrived
        self._timer: asyncio.TimerHandle | None = None

    CHUNKED, TO_CLOSE = -2, -3

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        waiter = self._waiter
        if waiter is None or waiter.done():  # bytes no request asked for: the connection is not used again
            self.keep = False
            return
        self._heard = waiter.get_loop().time()
        try:
            self._parse()
        except ResponseBroken as exc:
            self._fail(exc)

    def eof_received(self) -> bool | None:
        self.closed = True
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()  # so nothing else ends the wait: it must end here
        if self._waiter is None or self._waiter.done():
            return
        if self._head is not None and self._length == self.TO_CLOSE:
            try:
                self._finish(bytes(self._buffer))  # a body that ends with the connection
            except ResponseBroken as broken:  # one that does not decompress
                self._fail(broken)
        self._fail(ResponseBroken(f"the connection closed before the answer was whole ({exc or 'EOF'})"))

    @property
    def usable(self) -> bool:
        """Open, kept alive, and no byte past the last answer (a server out of step with us)."""
        return self.keep and not self.closed and not self._buffer

    async def exchange(self, method: str, request: bytes, read_timeout: float) -> Answer:
        loop = asyncio.get_running_loop()
        self._timeout = read_timeout
        waiter: asyncio.Future[Answer] = loop.create_future()
        self._waiter = waiter
        self._method, self._head, self._length, self._chunks, self._encoding = method, None, -1, [], ""
        self._heard = loop.time()
        self._timer = loop.call_at(self._heard + self._timeout, self._check_quiet)
        assert self.transport is not None
        self.transport.write(request)
        try:
            return await waiter
        finally:
            self._waiter = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _check_quiet(self) -> None:
        """The read timeout counts from the last bytes heard, as a socket read timeout would."""
        if self._waiter is None or self._waiter.done():
            return
        due = self._heard + self._timeout
        loop = self._waiter.get_loop()
        if loop.time() >= due:
            self._fail(ReadTimedOut(f"no answer for {self._timeout:g} s"))
            if self.transport is not None:
                self.transport.close()
        else:
            self._timer = loop.call_at(due, self._check_quiet)

    def _fail(self, exc: Exception) -> None:
        self.keep = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    def _finish(self, body: bytes) -> None:
        assert self._head is not None and self._waiter is not None
        if self._encoding:
            body = _decoded(body, self._encoding)
        status, reason, fields = self._head
        self._waiter.set_result((status, reason, CIMultiDictProxy(CIMultiDict(fields)), body))

    def _parse(self) -> None:
        buffer = self._buffer
        while self._head is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    raise ResponseBroken("the answer's header is too long")
                return
            self._read_head(bytes(buffer[:end]).decode("latin-1"))
            del buffer[: end + 4]
        if self._length >= 0:
            if len(buffer) == self._length:  # the usual case: one copy
                body = bytes(buffer)
                buffer.clear()
                self._finish(body)
            elif len(buffer) > self._length:
                body = bytes(buffer[: self._length])
                del buffer[: self._length]
                self._finish(body)
        elif self._length == self.CHUNKED:
            self._read_chunks()

    def _read_head(self, head: str) -> None:
        lines = head.split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or not code.isdigit() or len(code) != 3:
            raise ResponseBroken(f"not an HTTP/1.1 answer: {lines[0][:80]!r}")
        status = int(code)
        fields: list[tuple[str, str]] = []
        length: str | None = None
        chunked, connection = False, ""
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise ResponseBroken(f"a malformed header field: {line[:80]!r}")
            value = value.strip()
            fields.append((name.strip(), value))
            lowered = name.strip().lower()
            if lowered == "content-length":
                length = value
            elif lowered == "transfer-encoding":
                chunked = value.lower().endswith("chunked")
            elif lowered == "connection":
                connection = value.lower()
            elif lowered == "content-encoding":
                self._encoding = value.lower()
        if 100 <= status < 200:
            return  # an interim answer (100 Continue): the real one follows
        self._head = (status, reason, fields)
        self.keep = version == "HTTP/1.1" and "close" not in connection
        if _no_body(self._method, status):
            self._length = 0
        elif chunked:
            self._length = self.CHUNKED
        elif length is not None:
            if not length.isdigit():
                raise ResponseBroken(f"a malformed Content-Length: {length[:40]!r}")
            self._length = int(length)
        else:
            self._length, self.keep = self.TO_CLOSE, False

    def _read_chunks(self) -> None:
        buffer = self._buffer
        while True:
            eol = buffer.find(b"\r\n")
            if eol < 0:
                return
            size_text = bytes(buffer[:eol]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ResponseBroken(f"a malformed chunk size: {size_text[:20]!r}") from None
            if size == 0:
                end = buffer.find(b"\r\n\r\n", eol)  # after any trailer fields
                if end < 0:
                    return
                del buffer[: end + 4]
                self._finish(b"".join(self._chunks))
                return
            if len(buffer) < eol + 2 + size + 2:
                return
            self._chunks.append(bytes(buffer[eol + 2 : eol + 2 + size]))
            del buffer[: eol + 2 + size + 2]


def _decoded(body: bytes, encoding: str) -> bytes:
    try:
        if encoding in ("gzip", "x-gzip"):
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        if encoding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)  # raw deflate, as some servers send it
    except zlib.error as exc:
        raise ResponseBroken(f"a {encoding} body that does not decompress: {exc}") from exc
    if encoding in ("", "identity"):
        return body
    raise ResponseBroken(f"an answer in an encoding not asked for: {encoding}")


def _authority(url: str) -> tuple[str, int, str, str]:
    """(host, port, Host field, request target) of an https:// URL whose path and query are quoted already.
    A URL that is not (a next link with a space or a line break in it) is refused: no retry can mend it,
    and a line break would write header fields of its own."""
    if url[:8].lower() != "https://" or _UNQUOTED.search(url):
        raise ValueError(f"not a quoted https:// URL: {url[:120]!r}")
    rest = url[8:]
    slash = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, target = rest[:slash], rest[slash:]
    if target.startswith("?") or not target:
        target = "/" + target
    host, port = authority, 443
    if authority.startswith("["):  # an IPv6 literal
        close = authority.find("]")
        host, after = authority[1:close], authority[close + 1 :]
        if after.startswith(":"):
            port = int(after[1:])
    elif ":" in authority:
        name, _, number = authority.rpartition(":")
        host, port = name, int(number)
    return host, port, authority, target


class Http11Pool:
    """Kept-alive connections per host; as many open at once as requests are in flight."""

    def __init__(self, tls: ssl.SSLContext, timeout: float) -> None:
        self._tls = tls
        self._timeout = timeout
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._open: set[_Connection] = set()

    async def exchange(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> Answer:
        """One request and its whole answer. Raises ConnectFailed (nothing went out) or ResponseBroken."""
        host, port, authority, target = _authority(url)
        lines = [f"{method} {target} HTTP/1.1\r\nHost: {authority}\r\n"]
        # The fields this client frames the message with are its own (azure-core's requests carry a
        # Content-Length already: sent twice, a strict server refuses the request).
        lines += [f"{name}: {value}\r\n" for name, value in headers.items() if name.lower() not in _FRAMING]
        if not any(name.lower() == "accept-encoding" for name in headers):
            lines.append("Accept-Encoding: gzip, deflate\r\n")
        if body is not None or method in ("PUT", "POST", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}\r\n")
        request = ("".join(lines) + "\r\n").encode("latin-1") + (body or b"")
        idle = self._idle.setdefault((host, port), [])
        wait_answer = self._timeout if read_timeout is None else read_timeout
        # A connection the server closed while idle is dropped as soon as the loop hears of it. One it
        # closes as the request goes out fails that request, which the pipeline retries as it would any
        # broken connection: nothing is sent twice behind its back.
        connection = None
        while idle and connection is None:
            connection = idle.pop()
            if not connection.usable:
                self._drop(connection)
                connection = None
        if connection is None:
            connection = await self._connect(host, port, connect_timeout)
        try:
            answer = await connection.exchange(method, request, wait_answer)
        except BaseException:  # broken, timed out, or cancelled mid-answer: its state is unknown
            self._drop(connection)
            raise
        if connection.usable:
            idle.append(connection)
        else:
            self._drop(connection)
        return answer

    async def _connect(self, host: str, port: int, connect_timeout: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        wait = self._timeout if connect_timeout is None else connect_timeout
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(_Connection, host, port, ssl=self._tls, server_hostname=host), wait
            )
        except TimeoutError as exc:
            raise ConnectTimedOut(f"no connection to {host}:{port} within {wait:g} s") from exc
        except OSError as exc:  # refused, unresolved, unreachable, and ssl.SSLError (a certificate refused)
            raise ConnectFailed(f"cannot connect to {host}:{port}: {exc}") from exc
        self._open.add(connection)
        return connection

    def _drop(self, connection: _Connection) -> None:
        self._open.discard(connection)
        if connection.transport is not None and not connection.transport.is_closing():
            connection.transport.close()

    def close(self) -> None:
        for connection in list(self._open):
            self._drop(connection)
        self._idle.clear()
