"""Where traffic that enters a virtual network really leaves from: one lookup per distinct subnet, route
table, NAT gateway, public IP, prefix, Azure Firewall list and App Service Environment, cached by ID.

A subnet's egress, in the order Azure applies it: a route for 0.0.0.0/0 to a virtual appliance or a
gateway wins (resolved when the next hop is an Azure Firewall allowlist can read: its public IPs;
otherwise unknown, naming the next hop); else a NAT gateway (its public IPs and prefixes); else the
platform's addresses.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

from allowlist.armerrors import describe, raise_if_fatal
from allowlist.azure import ArmClients
from allowlist.jsonshape import json_object
from allowlist.model import Egress

NETWORK_API = "2024-05-01"
JSON = Mapping[str, Any]


def _name(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


def _ref(value: Any) -> str | None:
    return value.get("id") if isinstance(value, Mapping) and isinstance(value.get("id"), str) else None


def _props(body: JSON) -> JSON:
    return json_object(body.get("properties"))


def _done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


def addresses_of(cidr_or_address: str) -> list[str]:
    """Every address of a public IPv4 address or prefix (NAT prefixes are /28 or narrower)."""
    network = ipaddress.IPv4Network(cidr_or_address, strict=False)
    if network.num_addresses > 65536:
        raise ValueError(f"{cidr_or_address} is wider than a /16")
    return [str(a) for a in network] if network.num_addresses > 1 else [str(network.network_address)]


class NetworkResolver:
    """Thread-safe, and each resource is read once however many apps and threads ask for it."""

    def __init__(self, clients: ArmClients) -> None:
        self._clients = clients
        self._lock = threading.Lock()
        self._memo: dict[str, Future[Any]] = {}

    def _once(self, key: str, load: Callable[[], Any]) -> Any:
        with self._lock:
            future = self._memo.get(key)
            owner = future is None
            if future is None:
                future = self._memo[key] = Future()
        if owner:
            try:
                future.set_result(load())
            except Exception as exc:  # remembered: every app that asks gets the same answer
                future.set_exception(exc)
        return future.result()

    def preload(self, bodies: list[JSON], firewalls: dict[str, list[JSON]]) -> None:
        """Bodies found by a Resource Graph query, by ID, and each subscription's firewalls."""
        with self._lock:
            for body in bodies:
                self._memo.setdefault(str(body["id"]).lower(), _done(body))
            for sub, found in firewalls.items():
                path = f"/subscriptions/{sub}/providers/Microsoft.Network/azureFirewalls".lower()
                self._memo.setdefault(path, _done(found))

    def _get(self, resource_id: str, api_version: str = NETWORK_API) -> JSON:
        return self._once(resource_id.lower(), lambda: self._clients.get_raw(resource_id, api_version))  # type: ignore[no-any-return]

    def _firewalls(self, subscription_id: str) -> list[JSON]:
        path = f"/subscriptions/{subscription_id}/providers/Microsoft.Network/azureFirewalls"
        return self._once(path.lower(), lambda: list(self._clients.list_raw(path, NETWORK_API)))  # type: ignore[no-any-return]

    def subnet(self, subnet_id: str) -> Egress:
        return self._once("egress:" + subnet_id.lower(), lambda: self._subnet(subnet_id))  # type: ignore[no-any-return]

    def _subnet(self, subnet_id: str) -> Egress:
        try:
            props = _props(self._get(subnet_id))
            endpoints = tuple(
                sorted({e["service"] for e in props.get("serviceEndpoints") or [] if isinstance(e, Mapping)
                        and isinstance(e.get("service"), str)})
            )  # fmt: skip
            found = self._routed(subnet_id, _ref(props.get("routeTable")))
            if found is None:
                found = self._nat(subnet_id, _ref(props.get("natGateway")))
            if found is None:
                found = Egress("platform", chain=(subnet_id,))
        except Exception as exc:  # a lookup that fails leaves the egress unknown, never guessed
            raise_if_fatal(exc)
            return Egress("unknown", chain=(subnet_id,), reason=f"its egress could not be read: {describe(exc)}")
        return Egress(found.mode, found.ipv4, found.chain, found.reason, endpoints)

    def _routed(self, subnet_id: str, table_id: str | None) -> Egress | None:
        if table_id is None:
            return None
        routes = _props(self._get(table_id)).get("routes") or []
        default = next((r for r in routes if isinstance(r, Mapping)
                        and _props(r).get("addressPrefix") == "0.0.0.0/0"), None)  # fmt: skip
        if default is None:
            return None
        hop = str(_props(default).get("nextHopType", ""))
        hop_ip = _props(default).get("nextHopIpAddress")
        chain = (subnet_id, table_id)
        if hop.lower() == "internet":
            return None  # the default route, written out: NAT or the platform decides
        if hop.lower() == "virtualappliance" and isinstance(hop_ip, str):
            for firewall in self._firewalls(table_id.split("/")[2]):
                configs = _props(firewall).get("ipConfigurations") or []
                if any(_props(c).get("privateIPAddress") == hop_ip for c in configs if isinstance(c, Mapping)):
                    pips = [
                        p for c in configs if isinstance(c, Mapping) if (p := _ref(_props(c).get("publicIPAddress")))
                    ]
                    ipv4 = [a for pip in pips for a in self._public_ip(pip)]
                    return Egress("azure-firewall", tuple(ipv4), (*chain, str(firewall.get("id")), *pips))
        where = f"{hop} {hop_ip}" if isinstance(hop_ip, str) else hop
        reason = (
            f"its subnet's route table {_name(table_id)} sends 0.0.0.0/0 to {where}, which is not an Azure "
            "Firewall allowlist can read: declare its egress in [[egress]]"
        )
        return Egress("unknown", chain=chain, reason=reason)

    def _nat(self, subnet_id: str, nat_id: str | None) -> Egress | None:
        if nat_id is None:
            return None
        props = _props(self._get(nat_id))
        pips = [p for p in (_ref(x) for x in props.get("publicIpAddresses") or []) if p]
        prefixes = [p for p in (_ref(x) for x in props.get("publicIpPrefixes") or []) if p]
        ipv4 = [a for pip in pips for a in self._public_ip(pip)]
        for prefix_id in prefixes:
            text = _props(self._get(prefix_id)).get("ipPrefix")
            if isinstance(text, str) and ipaddress.ip_network(text, strict=False).version == 4:
                ipv4 += addresses_of(text)
        if not ipv4:
            return Egress(
                "unknown", chain=(subnet_id, nat_id), reason=f"NAT gateway {_name(nat_id)} has no public IPv4"
            )
        return Egress("nat-gateway", tuple(ipv4), (subnet_id, nat_id, *pips, *prefixes))

    def _public_ip(self, pip_id: str) -> list[str]:
        props = _props(self._get(pip_id))
        address = props.get("ipAddress")
        if isinstance(address, str) and ipaddress.ip_address(address).version == 4:
            return [address]
        return []

    def environment(self, ase_id: str, linux: bool, web_api: str) -> Egress:
        """An App Service Environment v3: its subnet's NAT gateway or firewall, else its outbound addresses."""
        return self._once(f"ase:{ase_id.lower()}:{linux}", lambda: self._environment(ase_id, linux, web_api))  # type: ignore[no-any-return]

    def _environment(self, ase_id: str, linux: bool, web_api: str) -> Egress:
        try:
            subnet_id = _ref(_props(self._get(ase_id, web_api)).get("virtualNetwork"))
            if subnet_id is not None:
                through = self.subnet(subnet_id)
                if through.mode != "platform":
                    return Egress(through.mode, through.ipv4, (ase_id, *through.chain), through.reason,
                                  through.service_endpoints)  # fmt: skip
            networking = _props(self._get(f"{ase_id}/configurations/networking", web_api))
            key = "linuxOutboundIpAddresses" if linux else "windowsOutboundIpAddresses"
            listed = networking.get(key) or []
            ipv4 = [a for a in listed if isinstance(a, str) and ipaddress.ip_address(a).version == 4]
        except Exception as exc:
            raise_if_fatal(exc)
            return Egress(
                "unknown", chain=(ase_id,), reason=f"its App Service Environment could not be read: {describe(exc)}"
            )
        if not ipv4:
            return Egress("unknown", chain=(ase_id,), reason=f"App Service Environment {_name(ase_id)} lists no {key}")
        return Egress("ase", tuple(ipv4), (ase_id, f"{ase_id}/configurations/networking#{key}"))
