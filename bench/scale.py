"""Scale benchmark: the CLI as a process against the emulator as another process, as users run it.

For each size: a generated estate (100 apps per subscription, 10% with a slot, 10% route-all through one
of 60 NAT-gateway subnets, up to 300 SQL servers each fed by 1 to 8 subscriptions), 20 ms added to
every ARM answer, ARM's throttling on. Records wall time, client CPU, peak RSS, ARM requests and 429s for
`allowlist plan`, the critical-path bound and the minimum request count for the estate, then `apply`
against the write-bucket bound, and how many servers fit their 128-rule limit with and without
compression.

    python bench/scale.py --sizes 1000,10000,30000,100000 --record bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from results import byte_compile, publish

from allowlist.apply import WRITES_PER_CONCURRENCY

BIN = Path(sys.executable).with_name("allowlist")
LATENCY_MS = 20.0
CONCURRENCY = 8
PAGE = 100
SUBNETS = 60
PLAN_RUNS = 3  # the default; --plan-runs sets it
LEASE_WRITES = 2  # tag writes per target lease: offered, then released
REFILL = 12.0  # seconds: ARM's read bucket refills at 25 per second (the emulator's default)


def estate_spec(apps: int) -> dict[str, Any]:
    subs = max(1, apps // 100)
    return {"subscriptions": subs, "apps": 100, "servers": min(300, 3 * subs), "subnets": SUBNETS, "nat": 0.1}


def config_for(spec: dict[str, Any], compress: bool) -> str:
    subs = spec["subscriptions"]
    lines = ["[settings]", f"compress = {'true' if compress else 'false'}", "poll_interval = 0", ""]
    servers = spec["servers"]
    for k in range(servers):
        # Server k is fed by 1 to 8 subscriptions from k on; with more subscriptions than servers (100,000
        # apps), from k's share of them on, enough to leave no subscription out of scope.
        start, count = (k, 1 + k % 8) if subs <= servers else (k * subs // servers, max(1 + k % 8, -(-subs // servers)))
        feeding = [f"{(start + i) % subs:08d}-0000-4000-8000-000000000000" for i in range(min(subs, count))]
        target = f"/subscriptions/{k % subs:08d}-0000-4000-8000-000000000000/resourceGroups/rg-data/providers/Microsoft.Sql/servers/sql-{k}"
        lines += [
            "[[sync]]",
            f'name = "sql-{k}"',
            f'targets = ["{target}"]',
            f"subscriptions = {json.dumps(feeding)}",
            "",
        ]
    return "\n".join(lines)


class EmulatorProcess:
    def __init__(self, spec: dict[str, Any], ca_dir: Path) -> None:
        generate = ",".join(f"{k}={v}" for k, v in spec.items())
        self.proc = subprocess.Popen(
            [str(BIN), "emulator", "--generate", generate, "--latency-ms", str(LATENCY_MS), "--ca-dir", str(ca_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if "listening on" not in first:
            raise RuntimeError(
                f"the emulator did not start: {first}{self.proc.stderr.read() if self.proc.stderr else ''}"
            )
        self.url = first.split("listening on ", 1)[1].strip()
        self.ca = str(ca_dir / "emulator-ca.pem")

    def stats(self, reset: bool = False) -> dict[str, Any]:
        url = f"{self.url}/_emulator/stats" + ("?reset=1" if reset else "")
        return requests.get(url, verify=self.ca, timeout=30).json()  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


# Linux keeps a process's peak RSS across exec, and a forked child starts with its parent's pages: a CLI
# started from this process (which holds the generated estate, hundreds of MB at 100,000 apps) would
# report this process's peak as its own. A small launcher forks it instead and reports its figures.
LAUNCHER = """
import json, os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
figures = [time.perf_counter() - started, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
           os.waitstatus_to_exitcode(status)]
with open(sys.argv[1], "w") as out:
    json.dump(figures, out)
"""


def run_cli(args: list[str], env: dict[str, str]) -> dict[str, float]:
    """Wall time, CPU seconds and peak RSS (MB) of one CLI process."""
    with tempfile.NamedTemporaryFile(suffix=".json") as figures:
        proc = subprocess.run([sys.executable, "-c", LAUNCHER, figures.name, str(BIN), *args], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)  # fmt: skip
        wall, cpu, rss, code = json.loads(Path(figures.name).read_text())
    return {"wall": wall, "cpu": cpu, "rss": rss, "code": code, "err": proc.stderr.decode()[-400:]}


def minimum_requests(spec: dict[str, Any]) -> int:
    """What any correct ARM-list run must ask of this estate: the subscription list, each subscription's
    site index pages, one includeSlots list per resource group, each server's IPv4 and IPv6 rule lists, and each
    subnet that route-all apps use, with its NAT gateway and public IP."""
    from allowlist.emulator.generate import generate_estate

    state = generate_estate(spec["subscriptions"], spec["apps"], servers=spec["servers"], subnets=SUBNETS,
                            nat_share=spec["nat"])  # fmt: skip
    subs: int = spec["subscriptions"]
    groups = {(s.subscription_id, s.resource_group.lower()) for s in state.sites.values()}
    subnets = {s.virtual_network_subnet_id for s in state.sites.values() if s.virtual_network_subnet_id}
    return 1 + subs * math.ceil(int(spec["apps"]) / PAGE) + len(groups) + 2 * int(spec["servers"]) + 3 * len(subnets)


def bucket_bound(writes_per_sub: dict[str, int]) -> float:
    """Seconds the busiest subscription's write bucket needs: ARM's 200 at once, then 10 a second."""
    return max((max(0, w - 200) / 10 for w in writes_per_sub.values()), default=0.0)


def critical_path(spec: dict[str, Any], requests_made: int) -> float:
    """The longest chain of requests that must follow one another, or all requests spread over the
    concurrency, whichever is longer (seconds)."""
    latency = LATENCY_MS / 1000
    chain = latency * (1 + 1 + 1 + 3)  # subscriptions -> site index -> group's sites; subnet -> NAT -> public IP
    return max(chain, requests_made * latency / CONCURRENCY)


def measure(apps: int, tmp: Path, with_apply: bool = True, plan_runs: int = PLAN_RUNS) -> dict[str, Any]:
    spec = estate_spec(apps)
    ca_dir = tmp / f"ca-{apps}"
    emu = EmulatorProcess(spec, ca_dir)
    try:
        env = {**os.environ, "ALLOWLIST_ARM_ENDPOINT": emu.url, "REQUESTS_CA_BUNDLE": emu.ca,
               "ALLOWLIST_ACCESS_TOKEN": "bench"}  # fmt: skip
        plain, packed = tmp / f"plain-{apps}.toml", tmp / f"compress-{apps}.toml"
        plain.write_text(config_for(spec, compress=False))
        packed.write_text(config_for(spec, compress=True))
        emu.stats(reset=True)
        out = tmp / f"plan-{apps}.json"
        fit = run_cli(["plan", "-c", str(plain), "-q", "--out", str(out)], env)
        before = json.loads(out.read_text())
        over = sum(1 for t in before["targets"] for f in t["findings"] if f["kind"] == "rule-limit")
        runs = []
        for _ in range(plan_runs):  # the median of each figure: one run on a shared 2-core box varies by 20%
            time.sleep(REFILL)  # let the read buckets refill: back-to-back runs would meet throttling
            emu.stats(reset=True)
            runs.append(run_cli(["plan", "-c", str(packed), "-q", "--out", str(out)], env))
            plan_stats = emu.stats(reset=True)
        plan: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "rss")}
        plan |= {"code": max(r["code"] for r in runs), "err": runs[-1]["err"], "cpus": sorted(r["cpu"] for r in runs)}
        after = json.loads(out.read_text())
        still_over = sum(1 for t in after["targets"] for f in t["findings"] if f["kind"] == "rule-limit")
        extra = sum(t.get("extra_addresses", 0) for t in after["targets"])
        time.sleep(REFILL)  # a throttled read that runs out of retries makes a plan incomplete, and so different
        graph = run_cli(
            ["plan", "-c", str(packed), "-q", "--source", "resource-graph", "--out", str(tmp / "g.json")], env
        )
        graph_stats = emu.stats(reset=True)
        same = json.loads((tmp / "g.json").read_text())["targets"] == after["targets"]
        writes_per_sub: dict[str, int] = {}  # rule writes
        leases_per_sub: dict[str, int] = {}  # targets with changes: each lease is offered, then released
        for t in after["targets"]:
            sub = t["id"].split("/")[2]
            writes_per_sub[sub] = writes_per_sub.get(sub, 0) + len(t["changes"])
            leases_per_sub[sub] = leases_per_sub.get(sub, 0) + (1 if t["changes"] else 0)
        if with_apply:
            time.sleep(REFILL)  # as before each plan: its reads would otherwise meet the Resource Graph run's
        apply = run_cli(["apply", "--yes", "-c", str(packed), "-q"], env) if with_apply else None
        apply_stats = emu.stats(reset=True)
    finally:
        emu.stop()
    writes = sum(writes_per_sub.values())
    # A subscription's bucket (200, then 10 a second) holds every write in it: its rule writes, and the two
    # tag writes of each of its targets' leases (a lease keeps overlapping runs apart: it is not optional).
    bucket = bucket_bound({s: w + LEASE_WRITES * leases_per_sub[s] for s, w in writes_per_sub.items()})
    rules_bucket = bucket_bound(writes_per_sub)
    write_floor = writes * (LATENCY_MS / 1000) / (CONCURRENCY * WRITES_PER_CONCURRENCY)  # every slot always busy
    return {
        "apps": len(after["apps"]), "spec": spec, "plan": plan, "plan_stats": plan_stats, "fit": fit,
        "minimum": minimum_requests(spec), "bound": critical_path(spec, minimum_requests(spec)),
        "servers": spec["servers"], "over_before": over, "over_after": still_over, "extra": extra,
        "apply": apply, "apply_stats": apply_stats, "graph": graph, "graph_stats": graph_stats, "same": same, "writes": writes, "write_bound": max(bucket, write_floor), "rules_bound": max(rules_bucket, write_floor),
        "max_writes_per_sub": max(writes_per_sub.values(), default=0),
    }  # fmt: skip


def report(rows: list[dict[str, Any]]) -> str:
    def s429(stats: dict[str, Any]) -> int:
        return int(stats["by_status"].get("429", 0))

    plan_runs = len(rows[0]["plan"]["cpus"]) if rows else PLAN_RUNS
    lines = [
        f"### {time.strftime('%Y-%m-%d')} — scale: CLI and emulator as separate processes",
        "",
        f"Emulator: {LATENCY_MS:g} ms added per answer, page size {PAGE}, ARM throttling on; 100 apps per "
        f"subscription, 10% with a slot, 10% route-all through {SUBNETS} NAT-gateway subnets; up to 300 SQL "
        f"servers, each fed by 1 to 8 subscriptions. Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} cores; concurrency {CONCURRENCY}; allowlist's modules byte-compiled, as an install "
        f"leaves them. plan: the median of {plan_runs} runs per size (CPU per app of the fastest and slowest run beside it); the other rows one run.",
        "",
        "**plan** (with `compress = true`)",
        "",
        "| apps and slots | servers | wall | bound | wall / bound | client CPU | CPU per app | runs' range | peak RSS | requests | minimum | ratio | 429s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for r in rows:
        p, st = r["plan"], r["plan_stats"]
        lines.append(
            f"| {r['apps']:,} | {r['servers']} | {p['wall']:.2f} s | {r['bound']:.2f} s | {p['wall'] / r['bound']:.2f}x "
            f"| {p['cpu']:.2f} s | {1000 * p['cpu'] / r['apps']:.3f} ms "
            f"| {1000 * p['cpus'][0] / r['apps']:.3f} to {1000 * p['cpus'][-1] / r['apps']:.3f} ms "
            f"| {p['rss']:.0f} MB | {st['requests']:,} "
            f"| {r['minimum']:,} | {st['requests'] / r['minimum']:.3f} | {s429(st)} |"
        )
    if len(rows) > 1:
        # the measure: from the 10,000-app size (the first at least that large) to the largest
        a, b = next((r for r in rows[:-1] if r["apps"] >= 10_000), rows[-2]), rows[-1]
        growth = (b["plan"]["wall"] / a["plan"]["wall"]) / (b["apps"] / a["apps"])
        cpu_growth = (b["plan"]["cpu"] / a["plan"]["cpu"]) / (b["apps"] / a["apps"])
        lines += ["", f"Growth from {a['apps']:,} to {b['apps']:,} apps, per app: wall {growth:.2f}x, CPU {cpu_growth:.2f}x "
                  "(1.00 = linear)."]  # fmt: skip
    lines += [
        "",
        "**plan from Resource Graph** (`--source resource-graph`, same estate)",
        "",
        "| apps and slots | wall | client CPU | peak RSS | requests | same targets as ARM lists |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        g, st = r["graph"], r["graph_stats"]
        lines.append(
            f"| {r['apps']:,} | {g['wall']:.2f} s | {g['cpu']:.2f} s | {g['rss']:.0f} MB | {st['requests']:,} | {'yes' if r['same'] else 'NO'} |"
        )
    lines += ["", "**apply** (every rule new; writes paced per subscription)", "",
              "| apps and slots | writes | most in one subscription | apply wall | write phase | write bound (rules and leases) | phase / bound | bound of rule writes alone | phase / that | every write, first to last (at the emulator) | that / bound | first to last rule write | writes in flight then (mean) | apply client CPU | 429s | 429s / writes |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in (r for r in rows if r["apply"] is not None):  # sizes run without --apply-up-to are left out
        a, st = r["apply"], r["apply_stats"]
        phase = max(0.0, a["wall"] - r["plan"]["wall"])
        ratio = phase / r["write_bound"] if r["write_bound"] else float("nan")
        lines.append(
            f"| {r['apps']:,} | {r['writes']:,} | {r['max_writes_per_sub']} | {a['wall']:.2f} s | {phase:.2f} s "
            f"| {r['write_bound']:.2f} s | {ratio:.2f}x | {r['rules_bound']:.2f} s | {phase / r['rules_bound']:.2f}x "
            f"| {st['all_writes_span']:.2f} s | {st['all_writes_span'] / r['write_bound']:.2f}x "
            f"| {st['writes_span']:.2f} s | {st['writes_in_flight']:.1f} "
            f"| {a['cpu']:.2f} s | {s429(st)} | {100 * s429(st) / max(1, r['writes']):.1f}% |"
        )
    lines += ["", "**rule limit** (128 per server)", "", "| apps and slots | servers | over the limit | with compress | extra addresses opened |",
              "|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['apps']:,} | {r['servers']} | {r['over_before']} | {r['over_after']} | {r['extra']:,} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000", help="apps per run, comma-separated")
    parser.add_argument("--record", type=Path, help="append the results to this Markdown file")
    parser.add_argument("--apply-up-to", type=int, default=None, help="apply only at sizes up to this many apps")
    parser.add_argument("--plan-runs", type=int, default=PLAN_RUNS, help="plan runs per size (their median is shown)")
    args = parser.parse_args()
    byte_compile()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            row = measure(size, Path(tmp), args.apply_up_to is None or size <= args.apply_up_to, args.plan_runs)
            for key in ("fit", "plan", "apply"):
                if row[key] is not None and row[key]["code"] not in (0, 1):
                    print(f"{key} at {size}: exit {row[key]['code']}: {row[key]['err']}", file=sys.stderr)
            rows.append(row)
            print(f"{size}: plan {row['plan']['wall']:.2f} s", file=sys.stderr)
    publish(report(rows), args.record)


if __name__ == "__main__":
    main()
