"""The shared HTTP transport: proxies from the environment, TLS always verified, errors the SDK retries,
and one pool of kept-alive connections."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from azure.core.exceptions import ServiceRequestError

from allowlist.azure import ArmClients, ArmSettings
from allowlist.emulator import Emulator
from allowlist.tls import tls_context
from tests.cli_helpers import cli, write_config
from tests.conftest import SQL1, SUB1, StaticCred
from tests.sockets import accept_forever

Cap = pytest.CaptureFixture[str]


class ConnectProxy:
    """A forward proxy that tunnels HTTPS (CONNECT) and records where each tunnel went."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.tunnels: list[str] = []
        accept_forever(self.server, self._tunnel)

    def _tunnel(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
        method, target = head.split(b" ")[:2]
        if method != b"CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        self.tunnels.append(target.decode())
        host, port = target.decode().rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        pair = {client: upstream, upstream: client}
        while True:
            ready, _, _ = select.select(list(pair), [], [], 5)
            if not ready:
                break
            for sock in ready:
                data = sock.recv(65536)
                if not data:
                    upstream.close()
                    client.close()
                    return
                pair[sock].sendall(data)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    p = ConnectProxy()
    yield p
    p.close()


def subscriptions(clients: ArmClients) -> list[str]:
    return sorted(s.subscription_id for s in clients.client("subscriptions").subscriptions.list())


def make_clients(emulator: Emulator, ca_bundle: str) -> ArmClients:
    return ArmClients(ArmSettings(endpoint=emulator.base_url, ca_bundle=ca_bundle, retry_backoff=0), StaticCred())


def test_https_proxy_from_the_environment_carries_every_request(
    emulator: Emulator, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    clients = make_clients(emulator, str(emulator.ca_path))
    found = subscriptions(clients)
    assert found and len(found) == len(set(found))
    host = emulator.base_url.removeprefix("https://")
    assert proxy.tunnels and set(proxy.tunnels) == {host}  # TLS end to end, through the tunnel


def test_no_proxy_goes_direct(emulator: Emulator, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert subscriptions(make_clients(emulator, str(emulator.ca_path)))
    assert proxy.tunnels == []


def test_a_certificate_from_another_authority_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with pytest.raises(ServiceRequestError, match="CERTIFICATE_VERIFY_FAILED"):
        subscriptions(make_clients(emulator, str(other)))
    assert emulator.count() == 0  # refused at the handshake: no request was sent


def test_the_cli_says_the_certificate_is_untrusted_and_writes_nothing(
    cli_env: Emulator, tmp_path: Path, capsys: Cap, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other))
    before = cli_env.state.snapshot()
    config = write_config(tmp_path / "a.toml", [{"targets": [SQL1], "subscriptions": ["*"]}], retry_total=0)
    result = cli(capsys, "apply", "--yes", "-c", str(config))
    assert result.code != 0
    assert "CERTIFICATE_VERIFY_FAILED" in result.err
    assert cli_env.state.snapshot() == before


def test_connections_are_kept_alive_across_clients(emulator: Emulator) -> None:
    clients = make_clients(emulator, str(emulator.ca_path))
    for _ in range(5):
        subscriptions(clients)
        clients.send("GET", f"{SQL1}/firewallRules?api-version=2021-11-01")
    stats = emulator.stats()
    assert stats["requests"] >= 10
    assert stats["connections"] == 1  # one thread, one kept-alive connection, one TLS handshake


def test_a_plan_loads_neither_urllib3_nor_aiohttp(cli_env: Emulator, tmp_path: Path) -> None:
    """Its reads all go through the event loop's own client: the synchronous transport and the proxy one
    are imported only by a run that needs them (about 0.2 s of start-up between them)."""
    config = write_config(tmp_path / "a.toml", [{"targets": [SQL1], "subscriptions": [SUB1]}])
    probe = (
        "import sys\n"
        "from allowlist.cli.main import run\n"
        f"code = run(['plan', '-q', '-c', {str(config)!r}])\n"
        "print(code, 'urllib3' in sys.modules, 'aiohttp' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=120)
    assert done.stdout.split()[-3:] == ["0", "False", "False"], done.stderr


def test_the_tls_context_is_made_once_per_bundle_and_again_when_the_bundle_changes(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(bundle))
    first = tls_context(str(bundle))
    assert tls_context(str(bundle)) is first  # the sync transport and the event loop's share it
    trustme.CA().cert_pem.write_to_path(str(bundle))
    os.utime(bundle, ns=(0, os.stat(bundle).st_mtime_ns + 1_000_000))
    assert tls_context(str(bundle)) is not first
