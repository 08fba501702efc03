"""Large synthetic estates for benchmarks: many subscriptions, apps on shared stamps, a few SQL servers.

Apps on one App Service stamp share outbound addresses, as in Azure, so the desired rule set stays
far smaller than the app count. The same arguments always give the same estate.
"""

from __future__ import annotations

import random

from allowlist.emulator.state import DbServer, FirewallRule, Site, State, Subscription


def generate_estate(
    subscriptions: int = 10,
    apps_per_subscription: int = 100,
    slot_share: float = 0.1,
    apps_per_stamp: int = 25,
    servers: int = 4,
    seed: int = 1,
) -> State:
    rng = random.Random(seed)
    state = State()
    stamp_count = max(1, subscriptions * apps_per_subscription // apps_per_stamp)
    stamps = []
    for s in range(stamp_count):
        base = f"{20 + s // 250}.{s % 250}.{rng.randrange(256)}"
        first = rng.randrange(0, 200)
        possible = [f"{base}.{first + i}" for i in range(rng.choice((6, 8, 12)))]
        possible += [f"{52 + s // 250}.{s % 250}.9.{rng.randrange(1, 255)}" for _ in range(rng.choice((2, 4)))]
        stamps.append(possible)
    for i in range(subscriptions):
        sub_id = f"{i:08d}-0000-4000-8000-000000000000"
        state.add_subscription(Subscription(sub_id, f"Subscription {i}"))
        for j in range(apps_per_subscription):
            possible = stamps[(i * apps_per_subscription + j) % stamp_count]
            kind = "functionapp" if j % 5 == 0 else "app,linux" if j % 2 else "app"
            site = Site(
                subscription_id=sub_id,
                resource_group=f"rg-{j % 10}",
                name=f"app-{i}-{j}",
                kind=kind,
                tags={"team": f"t{j % 7}"},
                outbound_ip_addresses=",".join(possible[:3]),
                possible_outbound_ip_addresses=",".join(rng.sample(possible, len(possible))),
            )
            if rng.random() < slot_share:
                site.slots["staging"] = Site(**{**site.__dict__, "slot": "staging", "slots": {}})
            state.add_site(site)
    for k in range(servers):
        server = DbServer(f"{k % subscriptions:08d}-0000-4000-8000-000000000000", "rg-data", f"sql-{k}")
        server.rules["allowallwindowsazureips"] = FirewallRule("AllowAllWindowsAzureIps", "0.0.0.0", "0.0.0.0")
        state.add_server(server)
    state.rule_limits = dict.fromkeys(state.rule_limits, 100_000)  # the bench measures reads and writes
    return state
