"""Raw ARM calls from one event loop: azure-core's async pipeline over a small HTTP/1.1 client (http11).

Why not threads: at 10,000 apps an apply makes about 27,000 rule writes. From 32 threads over urllib3
each cost about 1.4 ms of client CPU (thread hand-offs on the GIL, urllib3 and http.client's header
parsing); one loop carrying the same writes costs about 0.6 ms each through the pipeline over aiohttp,
0.45 ms sent directly (below) over aiohttp, and 0.3 ms sent directly over http11, measured against the
emulator at 20 ms per answer. A plan's 1,880 reads at that size cost less CPU through it too.

The pipeline has the same parts as the synchronous raw one (ArmClients.raw): request ID, user agent,
retries with the same rules, per-subscription pacing and ARM bearer auth. The loop runs in its own
thread, so the rest of allowlist stays synchronous: callers hand it a request or a batch and wait.
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from functools import lru_cache
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

import orjson
from azure.core import AsyncPipelineClient
from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import (
    AzureError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline import policies
from azure.core.pipeline.policies._utils import get_retry_after  # how azure-core reads Retry-After
from azure.core.pipeline.transport import AsyncHttpTransport
from azure.core.rest import HttpRequest
from azure.core.rest._http_response_impl_async import AsyncHttpResponseImpl
from azure.mgmt.core.policies import AsyncARMChallengeAuthenticationPolicy

from allowlist.armerrors import unreachable
from allowlist.armpolicies import (
    REMAINING_WRITES,
    check_deadline,
    make_pacing_policy,
    make_request_id_policy,
    make_retry_policy,
    new_request_id,
    write_subscription,
)
from allowlist.azure import json_answer, next_page, raise_for_status
from allowlist.http11 import ConnectFailed, ConnectTimedOut, Http11Pool, ReadTimedOut, ResponseBroken
from allowlist.tls import tls_context

if TYPE_CHECKING:
    from allowlist.armpolicies import WritePacer
    from allowlist.azure import ArmSettings, PageSink

RestCall = tuple[str, str, Any]  # method, URL (or a path from the endpoint), JSON body or None
T = TypeVar("T")


class AsyncArmResponse(AsyncHttpResponseImpl):
    """An answer read whole: the connection is back in the pool before the pipeline sees it."""

    def __init__(self, request: Any, status: int, reason: str, headers: Any, content: bytes) -> None:
        super().__init__(
            request=request,
            internal_response=None,
            status_code=status,
            reason=reason,
            headers=headers,  # a CIMultiDictProxy: case-insensitive
            content_type=headers.get("Content-Type"),
            stream_download_generator=_replay,
        )
        self._content = content

    async def close(self) -> None:
        self._is_closed = True  # nothing to release: the body was read and the connection returned


async def _replay(*args: Any, **kwargs: Any) -> AsyncIterator[bytes]:
    response: AsyncArmResponse = kwargs.get("response") or args[1]
    yield response.content


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (not on Windows): its TLS and socket handling are compiled, where
    asyncio's TLS is Python, and the loop thread is what bounds an apply's write rate. At 10,000 apps it
    cut a plan's CPU by about 0.5 s and an apply's by about 2.4 s (of 22)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class ArmTransport(AsyncHttpTransport[Any, AsyncArmResponse]):
    """The async twin of transport.Urllib3Transport: one TLS context, proxies from the environment once
    (never ~/.netrc), errors mapped to the same azure-core errors, so the retry rules act the same.

    Direct connections go through http11's client; a host reached through a proxy goes through aiohttp,
    which tunnels it (imported only then: it costs about 0.1 s of start-up CPU)."""

    def __init__(self, ca_bundle: str | None, timeout: float) -> None:
        self._timeout = timeout
        self._tls = tls_context(ca_bundle)
        self._proxies = urllib.request.getproxies_environment()
        self._proxy = self._proxies.get("https") or self._proxies.get("all")
        self._direct = Http11Pool(self._tls, timeout)
        self._session: Any = None  # aiohttp's ClientSession, for proxied hosts

    async def __aenter__(self) -> ArmTransport:
        return self

    async def __aexit__(self, *args: Any) -> None:
        pass  # shared by every request of the loop: closed once, by close()

    async def open(self) -> None:
        pass  # connections open as requests need them

    async def close(self) -> None:
        self._direct.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    @lru_cache(maxsize=64)  # noqa: B019 - one transport per loop; a handful of hosts
    def _proxy_for(self, host: str) -> str | None:
        if self._proxy is None or urllib.request.proxy_bypass_environment(host, self._proxies):  # type: ignore[attr-defined]
            return None
        return str(self._proxy)

    async def send(self, request: Any, **kwargs: Any) -> AsyncArmResponse:
        connect = kwargs.get("connection_timeout", self._timeout)
        read = kwargs.get("read_timeout", self._timeout)
        body = request.content if hasattr(request, "content") else request.data
        status, reason, headers, content = await self.exchange(
            request.method, request.url, dict(request.headers), body, (connect, read)
        )
        return AsyncArmResponse(request, status, reason, headers, content)

    async def exchange(
        self, method: str, url: str, headers: dict[str, str], body: Any, timeouts: tuple[float, float] | None = None
    ) -> tuple[int, str, Any, bytes]:
        """One request and its whole answer (status, reason, headers, body), transport errors mapped.
        `timeouts`: (connect, read) in seconds, when not the transport's own."""
        proxy = self._proxy_for(urlsplit(url).hostname or "") if self._proxy is not None else None
        if proxy is not None:
            return await self._proxied(method, url, headers, body, proxy, timeouts)
        if isinstance(body, str):
            body = body.encode()
        try:
            return await self._direct.exchange(method, url, headers, body, *(timeouts or (None, None)))
        except ConnectTimedOut as exc:
            raise ServiceRequestTimeoutError(exc, error=exc) from exc
        except ConnectFailed as exc:  # TLS, refused, unknown host: nothing reached the service
            raise ServiceRequestError(exc, error=exc) from exc
        except ReadTimedOut as exc:
            raise ServiceResponseTimeoutError(exc, error=exc) from exc
        except ResponseBroken as exc:  # the connection broke mid-exchange
            raise ServiceResponseError(exc, error=exc) from exc

    async def _proxied(
        self, method: str, url: str, headers: dict[str, str], body: Any, proxy: str,
        timeouts: tuple[float, float] | None,
    ) -> tuple[int, str, Any, bytes]:  # fmt: skip
        import aiohttp
        from yarl import URL

        from allowlist.transport import POOL_SIZE

        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._tls, limit=POOL_SIZE)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        connect, read = timeouts or (self._timeout, self._timeout)
        try:
            async with self._session.request(
                method,
                URL(url, encoded=True),  # quoted already: yarl need not quote it again
                data=body,
                headers=headers,
                proxy=proxy,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(sock_connect=connect, sock_read=read),
            ) as raw:
                return raw.status, raw.reason or "", raw.headers, await raw.read()
        except aiohttp.ConnectionTimeoutError as exc:
            raise ServiceRequestTimeoutError(exc, error=exc) from exc
        except (aiohttp.ServerTimeoutError, TimeoutError) as exc:
            raise ServiceResponseTimeoutError(exc, error=exc) from exc
        except aiohttp.ClientConnectorError as exc:  # TLS, refused, unknown host: nothing reached the service
            raise ServiceRequestError(exc, error=exc) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError) as exc:
            raise ServiceResponseError(exc, error=exc) from exc  # the connection broke mid-exchange
        except aiohttp.ClientError as exc:
            raise ServiceRequestError(exc, error=exc) from exc


class _AsyncCredential:
    """The run's credential, asked from a worker thread (a slow token request never stalls the loop), and
    its token kept for the direct first attempts until five minutes before it expires, as azure-core's
    auth policy keeps its own."""

    def __init__(self, credential: TokenCredential, scope: str) -> None:
        self._credential, self._scope = credential, scope
        self._token: AccessToken | None = None
        self._refreshing: asyncio.Lock | None = None

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: self._credential.get_token(*scopes, **kwargs))

    async def bearer(self) -> str:
        if self._stale():
            self._refreshing = self._refreshing or asyncio.Lock()
            async with self._refreshing:  # one request for a new token, however many writes wait for it
                if self._stale():
                    self._token = await self.get_token(self._scope)
        assert self._token is not None
        return f"Bearer {self._token.token}"

    def _stale(self) -> bool:
        return self._token is None or self._token.expires_on - time.time() < 300


async def _in_place(
    count: int, width: int, work: Callable[[int], Awaitable[None]], each: Callable[[int], None]
) -> list[Exception | None]:
    """work(0) .. work(count - 1), at most `width` at once; per index None, or what failed it (handed back in
    its place: the caller decides what it means); each(index) as each ends."""
    gate = asyncio.Semaphore(max(1, width))

    async def one(index: int) -> Exception | None:
        async with gate:
            try:
                await work(index)
                return None
            except Exception as exc:
                return exc
            finally:
                each(index)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


# What azure-core's retry policy retries (everything but its "safe" codes), and the methods it sends again
# after a connection broke: a first attempt ending in one of these is handed to the pipeline.
_RETRIED_STATUS = frozenset({408, 429, 500, 502, 503, 504} | set(range(506, 1000)))
_DIRECT_METHODS = frozenset({"GET", "PUT", "DELETE"})


class ArmLoop:
    """An event loop in its own thread and a pipeline over it, until close().

    Each GET, PUT or DELETE is first sent directly, doing the pipeline's work inline (request ID, user agent,
    bearer token, pacing): the pipeline's machinery cost about 40% of a rule write's CPU. The pipeline
    takes over only when the first attempt needs what it adds: a retry (a retried status or a broken
    connection, after the answer's Retry-After) or an auth challenge (401)."""

    def __init__(self, settings: ArmSettings, credential: TokenCredential, pacer: WritePacer, limit: int) -> None:
        from allowlist import __version__

        self._base = settings.endpoint.rstrip("/")
        self._deadline = settings.deadline
        self._pacer = pacer
        self._slots = asyncio.Semaphore(max(1, limit))  # writes in flight from every caller together
        self._loop = _new_loop()
        self._transport = ArmTransport(settings.ca_bundle, settings.timeout)
        self._credential = _AsyncCredential(credential, settings.scope)
        user_agent = policies.UserAgentPolicy(sdk_moniker=f"allowlist/{__version__}")
        self._user_agent = user_agent.user_agent
        self._client: AsyncPipelineClient[Any, Any] = AsyncPipelineClient(
            base_url=self._base,
            policies=[
                make_request_id_policy(),
                user_agent,
                make_retry_policy(settings, asynchronous=True),
                AsyncARMChallengeAuthenticationPolicy(self._credential, settings.scope),  # type: ignore[arg-type]
            ],
            per_retry_policies=[make_pacing_policy(pacer, asynchronous=True)],
            transport=self._transport,
        )
        self._thread = threading.Thread(target=self._loop.run_forever, name="allowlist-arm-loop", daemon=True)
        self._thread.start()

    def send_all(self, calls: Sequence[RestCall], width: int, each: Callable[[], None]) -> list[Exception | None]:
        """Send `calls`, at most `width` at once; in their order, None for each that succeeded, else what
        failed it (HttpResponseError with ARM's code and message for an error status). `each` is called
        as each one ends."""

        async def write(index: int) -> None:
            method, url, body = calls[index]
            subscription = write_subscription(method, url)
            if subscription is not None:  # before a slot: a write waiting for its subscription's bucket holds none
                await self._pacer.acquire_async(subscription)
            async with self._slots:
                response = await self._request(method, url, body, keep="nothing", paced=True)
            if response is not None:
                raise_for_status(response)

        return self._wait(_in_place(len(calls), width, write, lambda _: each()))

    def read_lists(
        self, urls: Sequence[str], api_version: str, width: int, on_page: PageSink, each: Callable[[int], None]
    ) -> list[Exception | None]:
        """See ArmClients.read_lists."""

        async def read(index: int) -> None:
            url: str | None = urls[index]
            while url:
                body = await self._json(url)
                on_page(index, body.get("value") or [])
                url = next_page(body, api_version)

        return self._wait(_in_place(len(urls), width, read, each))

    def get_json(self, url: str) -> Any:
        """A GET's JSON, or the error json_answer raises for its status."""
        return self._wait(self._json(url))

    async def _json(self, url: str) -> Any:
        found = await self._request("GET", url, None, keep="body")
        return orjson.loads(found) if isinstance(found, bytes) else json_answer(found)

    def send(self, method: str, url: str, body: Any = None, headers: Mapping[str, str] | None = None) -> Any:
        """One request, waited for: the answer whatever its status (the caller checks it)."""
        return self._wait(self._request(method, url, body, extra=headers))

    def _wait(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the loop; the calling thread waits for its result."""
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    async def _request(
        self,
        method: str,
        url: str,
        body: Any,
        keep: Literal["response", "body", "nothing"] = "response",
        extra: Mapping[str, str] | None = None,
        paced: bool = False,
    ) -> AsyncArmResponse | bytes | None:
        """The answer, whatever its status. A first attempt that succeeded is kept whole, or as its body alone
        (reads: a 200), or not at all (writes): no response object is made for the thousands that succeed.
        `extra`: headers such as If-Match. `paced`: its write token was taken already."""
        url = url if "://" in url else self._base + url  # a path from the endpoint, or a next link
        headers = {"x-ms-client-request-id": new_request_id(), "User-Agent": self._user_agent, **(extra or {})}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = orjson.dumps(body)
        answer = await self._direct(method, url, headers, content, paced) if method in _DIRECT_METHODS else None
        if answer is not None and keep != "response":
            if keep == "nothing" and answer[0] < 400:
                return None
            if keep == "body" and answer[0] == 200:
                return answer[3]
        request = HttpRequest(method, url, content=content, headers=headers)  # the same request ID: set once
        if answer is not None:
            return AsyncArmResponse(request, *answer)
        response: AsyncArmResponse = await self._client.send_request(request)
        return response

    async def _direct(
        self, method: str, url: str, headers: dict[str, str], content: bytes | None, paced: bool
    ) -> tuple[int, str, Any, bytes] | None:
        """The first attempt, or None when the pipeline must take over (having waited any Retry-After)."""
        check_deadline(self._deadline)
        authorized = {**headers, "Authorization": await self._credential.bearer()}  # a credential error: raised
        subscription = write_subscription(method, url)
        if subscription is not None and not paced:  # after the token, which may take a while: spent as it goes
            await self._pacer.acquire_async(subscription)
        try:
            answer = await self._transport.exchange(method, url, authorized, content)
        except AzureError as exc:
            if unreachable(exc) is not None:
                raise  # an untrusted certificate, an unknown host: no retry can help
            return None
        status, answer_headers = answer[0], answer[2]
        if subscription is not None:
            self._pacer.observe(subscription, answer_headers.get(REMAINING_WRITES))
        if status == 401 or status in _RETRIED_STATUS:
            wait = get_retry_after(SimpleNamespace(http_response=SimpleNamespace(headers=answer_headers)))  # type: ignore[arg-type]
            if wait:
                if self._deadline is not None:
                    wait = min(wait, max(0.0, self._deadline - time.monotonic()))
                await asyncio.sleep(wait)
            return None
        return answer

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._transport.close(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
