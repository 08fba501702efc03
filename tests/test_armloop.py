"""ARM calls from one event loop (ArmClients.event_loop): rule writes sent together (send_all) and reads
while it is open, with the same answers, errors, retries, pacing, proxies and TLS checks as the
synchronous raw pipeline, over few kept-alive connections."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import trustme
from azure.core import AsyncPipelineClient
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

from allowlist.apply import apply_plan
from allowlist.armerrors import unreachable
from allowlist.armloop import ArmTransport
from allowlist.armpolicies import new_request_id
from allowlist.azure import ArmClients, ArmSettings, RunTimeout, list_url
from allowlist.config import build_scope
from allowlist.emulator import Emulator
from allowlist.emulator.estate import build_estate
from allowlist.emulator.faults import Bucket, FaultConfig
from allowlist.sync import make_plan
from allowlist.transport import Urllib3Transport
from tests.conftest import SQL1, SUB1, SUB2, StaticCred, site
from tests.test_transport import ConnectProxy, make_clients, proxy  # noqa: F401 - the fixture

API = "api-version=2021-11-01"


def put(name: str, address: str) -> tuple[str, str, dict[str, object]]:
    body = {"properties": {"startIpAddress": address, "endIpAddress": address}}
    return "PUT", f"{SQL1}/firewallRules/{name}?{API}", body


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "allowlist-arm-loop"]


def test_answers_come_back_in_order_with_arm_errors_in_place(emulator: Emulator) -> None:
    clients = make_clients(emulator, str(emulator.ca_path))
    calls = [put(f"w{i}", f"20.0.0.{i}") for i in range(1, 9)]
    calls.insert(3, put("bad", "not-an-address"))
    calls.append(("DELETE", f"{SQL1.replace('sql-', 'missing-')}/firewallRules/x?{API}", None))
    ended: list[int] = []
    results = clients.send_all(calls, 4, lambda: ended.append(1))
    assert len(ended) == len(calls)  # `each` once per call, failures too
    errors = {i: r for i, r in enumerate(results) if r is not None}
    assert set(errors) == {3, len(calls) - 1}
    bad, missing = errors[3], errors[len(calls) - 1]
    assert isinstance(bad, HttpResponseError) and bad.status_code == 400 and bad.error is not None
    assert isinstance(missing, HttpResponseError) and missing.status_code == 404
    written = {r["name"] for r in clients.list_raw(f"{SQL1}/firewallRules", "2021-11-01")}
    assert {f"w{i}" for i in range(1, 9)} <= written and "bad" not in written


def test_throttled_writes_are_retried_after_retry_after(emulator: Emulator) -> None:
    emulator.faults.config = FaultConfig(throttle_rate=0.3, retry_after=0, seed=3)
    clients = make_clients(emulator, str(emulator.ca_path))
    results = clients.send_all([put(f"t{i}", f"20.0.1.{i}") for i in range(1, 21)], 4)
    assert results == [None] * 20
    assert emulator.stats()["by_status"].get("429", 0) > 0  # they were throttled, and retried to success


def test_the_loop_is_uvloops_where_it_is_installed(emulator: Emulator) -> None:
    uvloop = pytest.importorskip("uvloop")  # not on Windows: there the loop is asyncio's own
    clients = make_clients(emulator, str(emulator.ca_path))
    with clients.event_loop() as loop:
        assert isinstance(loop._loop, uvloop.Loop)
        assert clients.send_all([put("u1", "20.0.4.1")], 1) == [None]  # and it carries writes


def test_without_uvloop_the_loop_is_asyncios_own(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # its import fails, as on Windows
    clients = make_clients(emulator, str(emulator.ca_path))
    with clients.event_loop() as loop:
        assert type(loop._loop).__module__.startswith("asyncio")
        assert clients.send_all([put("a1", "20.0.4.2")], 1) == [None]


def test_writes_keep_within_the_subscriptions_write_bucket(emulator: Emulator) -> None:
    emulator.faults.config = FaultConfig(writes=Bucket(5, 20.0))
    clients = ArmClients(ArmSettings(endpoint=emulator.base_url, ca_bundle=str(emulator.ca_path)), StaticCred())
    # A smaller burst and half ARM's refill rate on this side: it cannot see when a write reaches ARM. Writes
    # sent apart can arrive together (the first ones wait on TLS handshakes, with the emulator in this process,
    # on its GIL); paced at exactly ARM's bucket, a write past the burst landed early in about 1 run in 6, and
    # at half its rate alone in about 1 CI run in 20. Unpaced, writes past the burst meet 429s.
    clients.pacer.burst, clients.pacer.per_second = 3, 10.0
    started = time.monotonic()
    results = clients.send_all([put(f"p{i}", f"20.0.2.{i}") for i in range(1, 16)], 8)
    assert results == [None] * 15
    assert time.monotonic() - started >= (15 - 3) / 10.0 * 0.9  # paced on this side
    assert emulator.stats()["by_status"].get("429", 0) == 0


def test_a_target_per_subscription_is_worked_at_once_while_reads_stay_at_concurrency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A subscription whose writes start late has left its bucket full meanwhile, and each second of refill
    lost then is a second more at the end: a target of every subscription is worked at once (here 10, where
    `concurrency` 3 alone would work 6). Their reads (leases confirmed, firewalls) still go 3 at a time."""
    subs = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(10)]
    estate = {
        "subscriptions": [{"id": sub, "name": sub[:8]} for sub in subs],
        "sites": [site(sub, "rg-web", f"web-{n}", f"20.0.{n}.1,20.0.{n}.9") for n, sub in enumerate(subs)],
        "sql_servers": [{"subscription": sub, "resource_group": "rg-data", "name": f"sql-{n}"}
                        for n, sub in enumerate(subs)],
    }  # fmt: skip
    pools: list[int] = []

    class Pool(ThreadPoolExecutor):
        def __init__(self, max_workers: int) -> None:
            pools.append(max_workers)
            super().__init__(max_workers=max_workers)

    monkeypatch.setattr("allowlist.apply.ThreadPoolExecutor", Pool)
    with Emulator(build_estate(estate).state) as emulator:
        clients = make_clients(emulator, str(emulator.ca_path))
        blocks = [{"subscriptions": [sub], "targets": [f"/subscriptions/{sub}/resourceGroups/rg-data/providers/"
                   f"Microsoft.Sql/servers/sql-{n}"]} for n, sub in enumerate(subs)]  # fmt: skip
        plan = make_plan(build_scope({"settings": {"concurrency": 3}, "sync": blocks}), clients).plan
        emulator.faults.config = FaultConfig(latency_ms=50)
        emulator.reset_log()
        assert apply_plan(plan, clients).ok
        offered = sorted(r.at for r in emulator.requests if r.method == "PATCH")[len(subs) - 1]  # leases, at once
        reads = [(r.at - r.duration, r.at) for r in emulator.requests if r.method == "GET" and r.at > offered]
        written = {r.path.split("/")[2] for r in emulator.requests if r.method == "PUT" and "/firewallRules/" in r.path}
    assert max(pools) == len(subs) and written == set(subs)
    # A SQL server's firewall is read as two lists at once (IPv4 and IPv6 rules): 3 targets, 6 GETs.
    assert reads and max(sum(1 for s, e in reads if s <= t < e) for t, _ in reads) <= 2 * 3


def test_a_certificate_from_another_authority_fails_every_write_at_once(emulator: Emulator, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    clients = make_clients(emulator, str(other))
    started = time.monotonic()
    results = clients.send_all([put(f"c{i}", f"20.0.3.{i}") for i in range(1, 5)], 4)
    assert all(r is not None and unreachable(r) == "certificate" for r in results)
    assert time.monotonic() - started < 5  # not retried: no retry can help
    assert emulator.count() == 0


def test_writes_go_through_the_https_proxy_unless_no_proxy_says_otherwise(
    emulator: Emulator,
    proxy: ConnectProxy,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert make_clients(emulator, str(emulator.ca_path)).send_all([put("x1", "20.0.4.1")], 1) == [None]
    assert proxy.tunnels == [emulator.base_url.removeprefix("https://")]
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert make_clients(emulator, str(emulator.ca_path)).send_all([put("x2", "20.0.4.2")], 1) == [None]
    assert len(proxy.tunnels) == 1


def test_one_loop_and_few_connections_while_writes_are_open(emulator: Emulator) -> None:
    clients = make_clients(emulator, str(emulator.ca_path))
    emulator.stats(reset=True)
    with clients.event_loop():
        for batch in range(5):
            assert clients.send_all([put(f"k{batch}-{i}", f"20.0.5.{i}") for i in range(1, 9)], 4) == [None] * 8
        assert len(loop_threads()) == 1  # nested users share it
    assert loop_threads() == []  # closed with its last user
    stats = emulator.stats()
    assert stats["requests"] == 40
    assert stats["connections"] <= 4  # at most `width` at once, each kept alive across batches


def test_no_write_starts_after_the_deadline(emulator: Emulator) -> None:
    settings = ArmSettings(endpoint=emulator.base_url, ca_bundle=str(emulator.ca_path), deadline=time.monotonic() - 1)
    clients = ArmClients(settings, StaticCred())
    results = clients.send_all([put("late", "20.0.6.1")], 1)
    assert isinstance(results[0], RunTimeout)
    assert emulator.count("PUT") == 0


def test_callers_together_never_exceed_the_writes_in_flight_limit(emulator: Emulator) -> None:
    emulator.faults.config = FaultConfig(latency_ms=40, throttle=False)
    clients = make_clients(emulator, str(emulator.ca_path))
    emulator.reset_log()
    with clients.event_loop(limit=3), ThreadPoolExecutor(4) as pool:
        batches = [[put(f"l{b}-{i}", f"20.0.7.{8 * b + i}") for i in range(1, 9)] for b in range(4)]
        assert list(pool.map(lambda batch: clients.send_all(batch, 4), batches)) == [[None] * 8] * 4
    spans = sorted((r.at - r.duration, r.at) for r in emulator.requests if r.method == "PUT")
    assert len(spans) == 32
    most = max(sum(1 for start, end in spans if start <= t < end) for t, _ in spans)
    assert most == 3  # four callers, each allowed 4 at once, share 3 slots, and use them all


def test_reads_go_through_the_loop_while_it_is_open_with_the_same_answers_and_errors(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    clients = make_clients(emulator, str(emulator.ca_path))
    direct = list(clients.list_raw(f"{SQL1}/firewallRules", "2021-11-01"))
    server = clients.get_raw(SQL1, "2021-11-01")

    def no_sync_transport(*args: object, **kwargs: object) -> None:
        raise AssertionError("a read went through the synchronous transport")

    monkeypatch.setattr(Urllib3Transport, "send", no_sync_transport)
    with clients.event_loop():
        assert list(clients.list_raw(f"{SQL1}/firewallRules", "2021-11-01")) == direct
        assert clients.get_raw(SQL1, "2021-11-01") == server
        with pytest.raises(ResourceNotFoundError):
            clients.get_raw(SQL1.replace("sql-", "missing-"), "2021-11-01")
    emulator.accepted_tokens = frozenset({"another"})
    with clients.event_loop(), pytest.raises(ClientAuthenticationError):
        clients.get_raw(SQL1, "2021-11-01")


def test_first_attempts_skip_the_pipeline_and_a_throttled_one_is_retried_after_retry_after_with_its_request_id(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.faults.config = FaultConfig(writes=Bucket(1, 1.0))  # one write, then one a second: the 2nd is a 429
    clients = make_clients(emulator, str(emulator.ca_path))
    sent: list[dict[str, str]] = []
    through_pipeline: list[str] = []
    exchange, pipeline_send = ArmTransport.exchange, AsyncPipelineClient.send_request

    async def spy_exchange(self: ArmTransport, method: str, url: str, headers: dict[str, str], *rest: Any) -> Any:
        sent.append(dict(headers))
        return await exchange(self, method, url, headers, *rest)

    def spy_pipeline(self: Any, request: Any, **kwargs: Any) -> Any:
        through_pipeline.append(request.method)
        return pipeline_send(self, request, **kwargs)

    monkeypatch.setattr(ArmTransport, "exchange", spy_exchange)
    monkeypatch.setattr(AsyncPipelineClient, "send_request", spy_pipeline)
    emulator.reset_log()
    with clients.event_loop():
        assert clients.get_raw(SQL1, "2021-11-01")["name"] == "sql-one"
        assert clients.send_all([put("b1", "20.0.8.1"), put("b2", "20.0.8.2")], 1) == [None, None]
    puts = [r for r in emulator.requests if r.method == "PUT"]
    assert [r.status == 429 for r in puts] == [False, True, False] and puts[2].status < 300
    assert puts[2].at - puts[2].duration - puts[1].at >= 0.9  # the answer's Retry-After (1 s) was waited
    assert through_pipeline == ["PUT"]  # only the retry: the GET and first attempts went directly
    assert [h["x-ms-client-request-id"] for h in sent[2:]] == [sent[2]["x-ms-client-request-id"]] * 2
    assert len({h["x-ms-client-request-id"] for h in sent}) == 3  # one per request, kept across its retry
    assert {(h["Authorization"], h["User-Agent"]) for h in sent} == {("Bearer test-token", sent[-1]["User-Agent"])}
    assert "allowlist/" in sent[0]["User-Agent"]  # direct or through the pipeline, the same bearer and user agent


def test_writes_whose_connection_drops_are_sent_again_until_they_land(emulator: Emulator) -> None:
    emulator.faults.config = FaultConfig(drop_rate=0.4, error_rate=0.2, throttle=False, seed=1)
    clients = make_clients(emulator, str(emulator.ca_path))
    emulator.reset_log()
    assert clients.send_all([put(f"d{i}", f"20.0.9.{i}") for i in range(1, 13)], 3) == [None] * 12
    statuses = [r.status for r in emulator.requests if r.method == "PUT"]
    assert 0 in statuses and any(s >= 500 for s in statuses)  # dropped and failed first attempts, retried
    written = {r["name"] for r in clients.list_raw(f"{SQL1}/firewallRules", "2021-11-01")}
    assert {f"d{i}" for i in range(1, 13)} <= written


def test_every_read_of_a_plan_goes_through_the_loop(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop opens before the first read: none waits for it on the synchronous transport."""
    clients = make_clients(emulator, str(emulator.ca_path))
    scope = build_scope({"settings": {"retry_backoff": 0}, "sync": [{"subscriptions": [SUB1], "targets": [SQL1]}]})
    expected = make_plan(scope, clients).plan

    def no_sync_transport(*args: object, **kwargs: object) -> None:
        raise AssertionError("a read went through the synchronous transport")

    monkeypatch.setattr(Urllib3Transport, "send", no_sync_transport)
    emulator.reset_log()
    plan = make_plan(scope, clients).plan
    assert plan.fully_read and plan.targets == expected.targets
    assert emulator.count("GET") >= 3  # subscriptions, sites, the server's rules: all through the loop


def test_an_apply_sends_every_call_through_the_loop_leases_included(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    clients = make_clients(emulator, str(emulator.ca_path))
    scope = build_scope({"settings": {"retry_backoff": 0}, "sync": [{"subscriptions": [SUB1], "targets": [SQL1]}]})
    plan = make_plan(scope, clients).plan
    assert plan.targets[0].changes

    def no_sync_transport(*args: object, **kwargs: object) -> None:
        raise AssertionError("a call went through the synchronous transport")

    monkeypatch.setattr(Urllib3Transport, "send", no_sync_transport)
    emulator.reset_log()
    assert apply_plan(plan, clients).ok
    assert emulator.count("PATCH", "/providers/Microsoft.Resources/tags/default") >= 2  # taken, then released
    assert make_plan(scope, clients).plan.targets[0].changes == ()


def test_client_request_ids_are_distinct_version_4_uuids() -> None:
    import uuid

    ids = [new_request_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_many_lists_are_read_page_by_page_in_the_loop_with_errors_in_place(emulator: Emulator) -> None:
    clients = make_clients(emulator, str(emulator.ca_path))
    web = clients.api_version("web")
    paths = [f"/subscriptions/{s}/providers/Microsoft.Web/sites" for s in (SUB1, SUB2, "0" * 8 + SUB1[8:])]
    pages: list[tuple[int, int, str]] = []
    ended: list[int] = []
    errors = clients.read_lists(
        [list_url(p, web) for p in paths], web, 2,
        lambda i, items: pages.append((i, len(items), threading.current_thread().name)), ended.append,
    )  # fmt: skip
    assert errors[:2] == [None, None] and isinstance(errors[2], HttpResponseError)  # an unknown subscription
    assert sorted(ended) == [0, 1, 2]
    for i in (0, 1):  # every page, in the loop thread, holding what the synchronous pager yields
        assert sum(n for k, n, _ in pages if k == i) == len(list(clients.list_raw(paths[i], web)))
    assert len([k for k, _, _ in pages if k == 0]) > 1  # the estate pages by two: nextLinks were followed
    assert {name for _, _, name in pages} == {"allowlist-arm-loop"}


def test_a_read_in_flight_keeps_the_loop_open_after_its_opener_leaves(emulator: Emulator) -> None:
    emulator.faults.config = FaultConfig(latency_ms=300, throttle=False)
    clients = make_clients(emulator, str(emulator.ca_path))
    found: list[dict[str, object]] = []
    reader = threading.Thread(target=lambda: found.append(clients.get_raw(SQL1, "2021-11-01")), daemon=True)
    with clients.event_loop():
        reader.start()
        time.sleep(0.1)  # the read has taken the open loop
    reader.join(timeout=10)  # its opener left: it must still finish (a daemon, so a hang fails, not stalls)
    assert [f["name"] for f in found] == ["sql-one"]
    assert loop_threads() == []  # and the loop closed with its last user


def test_the_busiest_subscriptions_are_started_first_in_each_round() -> None:
    """The busiest subscription's bucket sets how long an apply takes: its targets never wait behind others."""
    from allowlist.apply import interleave
    from allowlist.model import IpRange
    from allowlist.planner import Change, TargetPlan
    from allowlist.targets.registry import parse_target

    def target(sub: str, name: str, writes: int) -> TargetPlan:
        ref = parse_target(f"/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Sql/servers/{name}")
        change = Change("create", "x", IpRange.parse("20.0.0.1"))
        return TargetPlan(target=ref, rule_limit=128, fingerprint="", changes=(change,) * writes)

    a, b, c = "a" * 8 + SUB1[8:], "b" * 8 + SUB1[8:], "c" * 8 + SUB1[8:]
    work = [target(a, "a1", 5), target(a, "a2", 1), target(b, "b1", 3), target(b, "b2", 4), target(b, "b3", 3),
            target(c, "c1", 2)]  # fmt: skip
    order = [t.target.name for t in interleave(work)]
    # b has 10 writes, a 6, c 2: rounds of one target per subscription, busiest subscription and target first
    assert order == ["b2", "a1", "c1", "b1", "a2", "b3"]
