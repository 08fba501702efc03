"""`allowlist init`: a commented allowlist.toml drafted from what ARM shows, as a first guess to review.

Pure: given the subscriptions, the servers and accounts, and the apps, it writes TOML text. One [[sync]] block
per resource group holding servers, choosing the apps in that same resource group, else the apps in its
subscription; where there are none the block is written commented out.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence

from allowlist import __version__
from allowlist.model import AppEgress, TargetRef
from allowlist.targets.registry import capabilities


def _toml(value: str) -> str:
    return json.dumps(value)  # a TOML basic string is JSON's string syntax for everything we write


def draft_config(subscriptions: Sequence[str], targets: Sequence[TargetRef], apps: Sequence[AppEgress]) -> str:
    groups: dict[tuple[str, str], list[TargetRef]] = defaultdict(list)
    for t in targets:
        groups[(t.subscription_id.lower(), t.resource_group.lower())].append(t)
    apps_in: dict[tuple[str, str], list[AppEgress]] = defaultdict(list)
    for a in apps:
        apps_in[(a.subscription_id.lower(), a.resource_group.lower())].append(a)
    lines = [
        f"# allowlist.toml drafted by `allowlist init` (allowlist {__version__}) from what ARM showed:",
        f"# {len(subscriptions)} subscription(s), {len(targets)} server(s) and account(s), {len(apps)} app(s).",
        "# A FIRST GUESS: each block syncs a resource group's servers with the apps in that same group, or, when it",
        "# holds none, with every app in the subscription.",
        "# Review every block, run `allowlist plan`, and only then `allowlist apply`.",
        "# Every key is explained in examples/allowlist.toml and in the README (Configure).",
        "",
        "[settings]",
        '# prefix = "allowlist-"      # rules allowlist creates carry it; it never touches any other rule',
        '# addresses = "possible"     # possibleOutboundIpAddresses, as the App Service documentation advises',
        "# max_delete_percent = 50    # refuse a run that would delete more than this share of a firewall",
        "",
        "# Subscriptions seen:",
        *(f"#   {s}" for s in subscriptions),
    ]
    names: set[str] = set()
    for (sub, _), members in sorted(groups.items(), key=lambda g: (g[0][0], g[0][1])):
        members.sort(key=lambda t: t.key)
        group = members[0].resource_group
        name = group if group.lower() not in names else f"{group}-{sub[:8]}"  # block names are unique
        names.add(name.lower())
        found, chooser = sorted(apps_in.get((sub, group.lower()), []), key=lambda a: a.name.lower()), group
        selector = [f"subscriptions = [{_toml(sub)}]", f"resource_groups = [{_toml(group)}]"]
        if not found:  # databases often live apart from their apps: then the subscription's apps
            found = sorted((a for a in apps if a.subscription_id.lower() == sub), key=lambda a: a.name.lower())
            chooser, selector = f"subscription {sub}", selector[:1]
        unpinned = [a for a in found if not a.pinned]
        if unpinned:  # their addresses are not where they connect from: name the others instead
            found = [a for a in found if a.pinned]
            selector.append("names = [" + ", ".join(_toml(a.name) for a in found) + "]")
        block = [
            "[[sync]]",
            f"name = {_toml(name)}",
            "targets = [",
            *(f"  {_toml(t.id)},   # {capabilities(t.kind).label}" for t in members),
            "]",
            *selector,
        ]
        lines += ["", f"# {group} ({sub}): {len(members)} firewall(s)."]
        for a in unpinned:
            lines.append(f"# Left out: {a.name} is not pinned ({a.reason}); see [[egress]] in the README.")
        if found:
            shown = ", ".join(a.name for a in found[:12]) + (f" and {len(found) - 12} more" if len(found) > 12 else "")
            lines.append(
                f"# Guess: the {len(found)} app(s) in {chooser}: {shown}. Narrow it to the apps that use these."
            )
            lines += block
        else:
            lines.append(f"# No app found in {chooser}: name the apps that use these, then uncomment.")
            lines += [f"# {line}" for line in block]
    return "\n".join(lines) + "\n"
