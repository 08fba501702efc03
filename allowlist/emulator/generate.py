"""Large synthetic estates for benchmarks: many subscriptions, apps on shared stamps, SQL servers, and
integration subnets with NAT gateways for a share of route-all apps.

Apps on one App Service stamp share outbound addresses, as in Azure, and a subscription's apps sit on a
few stamps, so a server fed by one subscription needs a handful of rules while a server fed by many
needs more than 128. The same arguments always give the same estate.
"""

from __future__ import annotations

import random

from allowlist.emulator.providers import network
from allowlist.emulator.state import DbServer, FirewallRule, Site, State, Subscription

NET_GROUP = "rg-net"


def subscription_id(i: int) -> str:
    return f"{i:08d}-0000-4000-8000-000000000000"


def generate_estate(
    subscriptions: int = 10,
    apps_per_subscription: int = 100,
    slot_share: float = 0.1,
    apps_per_stamp: int = 25,
    servers: int = 4,
    subnets: int = 0,
    nat_share: float = 0.0,
    seed: int = 1,
) -> State:
    rng = random.Random(seed)
    state = State()
    per_sub = max(1, apps_per_subscription // apps_per_stamp)
    stamps = []
    for s in range(subscriptions * per_sub):
        base = f"{20 + s // 250}.{s % 250}.{rng.randrange(256)}"
        first = rng.randrange(0, 200)
        possible = [f"{base}.{first + i}" for i in range(rng.choice((6, 8, 12)))]
        possible += [f"{52 + s // 250}.{s % 250}.9.{rng.randrange(1, 255)}" for _ in range(rng.choice((2, 4)))]
        stamps.append(possible)
    subnet_ids = _network(state, subnets, rng)
    for i in range(subscriptions):
        sub_id = subscription_id(i)
        state.add_subscription(Subscription(sub_id, f"Subscription {i}"))
        for j in range(apps_per_subscription):
            possible = stamps[i * per_sub + j % per_sub]
            kind = "functionapp" if j % 5 == 0 else "app,linux" if j % 2 else "app"
            routed = bool(subnet_ids) and rng.random() < nat_share
            site = Site(
                subscription_id=sub_id,
                resource_group=f"rg-{j % 10}",
                name=f"app-{i}-{j}",
                kind=kind,
                tags={"team": f"t{j % 7}"},
                outbound_ip_addresses=",".join(possible[:3]),
                possible_outbound_ip_addresses=",".join(rng.sample(possible, len(possible))),
                virtual_network_subnet_id=subnet_ids[(i + j) % len(subnet_ids)] if routed else None,
                application_traffic=routed,
            )
            if rng.random() < slot_share:
                site.slots["staging"] = Site(**{**site.__dict__, "slot": "staging", "slots": {}})
            state.add_site(site)
    for k in range(servers):
        server = DbServer(subscription_id(k % subscriptions), "rg-data", f"sql-{k}")
        server.rules["allowallwindowsazureips"] = FirewallRule("AllowAllWindowsAzureIps", "0.0.0.0", "0.0.0.0")
        state.add_server(server)
    return state


def _network(state: State, subnets: int, rng: random.Random) -> list[str]:
    """`subnets` integration subnets in the first subscription, each with a NAT gateway and a public IP."""
    ids = []
    net = f"/subscriptions/{subscription_id(0)}/resourceGroups/{NET_GROUP}/providers/Microsoft.Network"
    for n in range(subnets):
        subnet = f"{net}/virtualNetworks/vnet-{n // 8}/subnets/apps-{n}"
        nat, pip = f"{net}/natGateways/nat-{n}", f"{net}/publicIPAddresses/nat-{n}"
        state.add_network(network.subnet_body(subnet, f"10.{n // 250}.{n % 250}.0/24", nat, None, []))
        state.add_network(network.nat_gateway_body(nat, [pip], [], "westeurope"))
        state.add_network(
            network.public_ip_body(pip, f"51.{100 + n // 250}.{n % 250}.{rng.randrange(1, 255)}", "westeurope")
        )
        ids.append(subnet)
    if subnets:
        state.resource_groups.add((subscription_id(0), NET_GROUP))
    return ids


def parse_spec(spec: str) -> dict[str, float]:
    """`subscriptions=100,apps=100,servers=300,subnets=60,nat=0.1,seed=1` -> generate_estate arguments."""
    names = {"subscriptions": "subscriptions", "apps": "apps_per_subscription", "servers": "servers",
             "subnets": "subnets", "nat": "nat_share", "slots": "slot_share", "seed": "seed",
             "stamp": "apps_per_stamp"}  # fmt: skip
    out: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in spec.split(","))):
        key, _, value = item.partition("=")
        if key not in names or not value:
            raise ValueError(f"--generate '{item}': expected one of {', '.join(names)} as key=value")
        out[names[key]] = float(value)
    return out
