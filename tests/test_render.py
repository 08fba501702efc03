"""`allowlist render`: every format matches its golden file, parses back, and holds exactly the rules
`apply` leaves on the servers (same names, same ranges), so teams can switch modes without churn."""

from __future__ import annotations

import csv
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import hcl2
import pytest

from allowlist.emulator import Emulator
from allowlist.emulator.state import FirewallRule
from allowlist.render import FORMATS
from allowlist.targets.webapp import restriction_range
from tests.cli_helpers import cli, write_config
from tests.conftest import SQL1, SQL2
from tests.test_backends import ALL, API, backend_estate

Cap = pytest.CaptureFixture[str]
GOLDEN = Path(__file__).parent / "golden" / "render"
Rule = tuple[str, str, str, str]  # (server name, rule name, start, end)


@pytest.fixture
def estate() -> dict[str, Any]:
    return backend_estate()


@pytest.fixture
def config(cli_env: Emulator, tmp_path: Path) -> Path:
    """Every kind of back end; sql-one already holds one rule allowlist keeps and one it would remove,
    and the Cosmos DB account holds someone's entry."""
    rules = cli_env.state.servers[SQL1.lower()].rules
    rules["allowlist-30.0.0.1"] = FirewallRule("allowlist-30.0.0.1", "30.0.0.1", "30.0.0.1")
    rules["allowlist-5.5.5.5"] = FirewallRule("allowlist-5.5.5.5", "5.5.5.5", "5.5.5.5")
    targets = [SQL1, SQL2, *ALL.values()]
    return write_config(tmp_path / "allowlist.toml", [{"name": "all", "targets": targets}], poll_interval=0)


def render_all(capsys: Cap, out: Path, *extra: str, formats: tuple[str, ...] = FORMATS) -> dict[str, dict[str, str]]:
    rendered = {}
    for fmt in formats:
        result = cli(capsys, "render", "--format", fmt, "--out", str(out / fmt), "-c", "allowlist.toml", *extra)
        assert result.code == 0, result.err
        rendered[fmt] = {p.name: p.read_text() for p in sorted((out / fmt).iterdir())}
    return rendered


def managed_after_apply(emu: Emulator, capsys: Cap) -> set[Rule]:
    """Named rules allowlist owns, and every entry of every address list, once apply has run."""
    assert cli(capsys, "apply", "--yes", "-c", "allowlist.toml").code == 0
    lists = {a.id for a in emu.state.accounts.values()}
    return {
        (resource_id.rsplit("/", 1)[-1], r["name"], r["start"], r["end"])
        for resource_id, rules in emu.state.snapshot().items()
        for r in rules
        if r["name"].startswith(("allowlist-", "allowlist_")) or resource_id in lists or resource_id == API
    }


ALL_KINDS = tuple(f for f in FORMATS if f != "powershell")  # powershell writes Azure SQL only


def test_every_format_matches_its_golden_file(config: Path, cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    rendered = render_all(capsys, tmp_path / "out", formats=ALL_KINDS)
    write_config(tmp_path / "allowlist.toml", [{"name": "sql", "targets": [SQL1, SQL2]}])
    rendered |= render_all(capsys, tmp_path / "out", formats=("powershell",))
    if os.environ.get("UPDATE_GOLDEN"):
        shutil.rmtree(GOLDEN, ignore_errors=True)
        for fmt, files in rendered.items():
            (GOLDEN / fmt).mkdir(parents=True)
            for name, text in files.items():
                (GOLDEN / fmt / name).write_text(text)
    for fmt, files in rendered.items():
        expected = {p.name: p.read_text() for p in sorted((GOLDEN / fmt).iterdir())}
        assert files == expected, f"{fmt} differs from tests/golden/render/{fmt} (UPDATE_GOLDEN=1 to accept)"


def test_every_format_holds_exactly_what_apply_makes(
    config: Path, cli_env: Emulator, tmp_path: Path, capsys: Cap
) -> None:
    rendered = render_all(capsys, tmp_path / "out", formats=ALL_KINDS)
    parsed = {fmt: PARSERS[fmt](files) for fmt, files in rendered.items()}
    parsed["azcli"] |= azcli_additions(rendered["azcli"])
    after_apply = managed_after_apply(cli_env, capsys)
    assert ("sql-one", "allowlist-30.0.0.1", "30.0.0.1", "30.0.0.1") in after_apply  # kept
    assert not any(r[1] == "allowlist-5.5.5.5" for r in after_apply)  # removed
    assert ("pg-one", "allowlist-20_0_0_1-20_0_0_3", "20.0.0.1", "20.0.0.3") in after_apply
    foreign = {r for r in after_apply if r[1] in ("198.51.100.7", "office")}  # kept in the lists, not allowlist's
    assert len(foreign) == 4  # Cosmos DB, Storage, Key Vault and the app's restrictions each keep someone's entry
    assert ("web-b", "allowlist-20.0.0.1-20.0.0.3", "20.0.0.1", "20.0.0.3") in after_apply
    for fmt in ("terraform", "arm", "bicep"):  # whole lists, as the account resources and config/web hold them
        assert parsed[fmt] == after_apply, fmt
    for fmt in ("azcli", "csv", "json"):  # allowlist's own rules and entries
        assert parsed[fmt] == after_apply - foreign, fmt


def test_powershell_refuses_what_it_cannot_write(config: Path, tmp_path: Path, capsys: Cap) -> None:
    result = cli(capsys, "render", "-f", "powershell", "--out", str(tmp_path / "ps"), "-c", "allowlist.toml")
    assert result.code == 1 and "the powershell format writes Azure SQL servers only" in result.err
    assert not (tmp_path / "ps").exists()


def parse_terraform(files: dict[str, str]) -> set[Rule]:
    (text,) = files.values()
    data = hcl2.loads(text)
    unquote = json.loads
    found = set()
    local_values = data["locals"][0]
    for kind in ("sql", "postgresql", "mysql", "redis"):
        for key, rule in local_values.get(f"allowlist_{kind}_firewall_rules", {}).items():
            server = (
                unquote(rule.get("server_name") or rule.get("redis_cache_name") or '""')
                or unquote(rule["server_id"]).split("/")[-1]
            )
            name = unquote(rule["name"])
            assert unquote(key) == f"{server}/{name}"  # static keys
            start, end = rule.get("start_ip_address") or rule["start_ip"], rule.get("end_ip_address") or rule["end_ip"]
            found.add((server, name, unquote(start), unquote(end)))
    for kind in ("cosmosdb_ip_range_filter", "storage_ip_rules", "key_vault_ip_rules"):
        for account_id, entries in local_values.get(f"allowlist_{kind}", {}).items():
            found |= {_entry(unquote(account_id).rsplit("/", 1)[-1], unquote(e)) for e in entries}
    for key, rule in local_values.get("allowlist_sql_ipv6_firewall_rules", {}).items():
        server, name = unquote(rule["server_id"]).rsplit("/", 1)[-1], unquote(rule["name"])
        assert unquote(key) == f"{server}/{name}"
        found.add((server, name, unquote(rule["start_ipv6_address"]), unquote(rule["end_ipv6_address"])))
    for config_id, value in local_values.get("allowlist_access_restrictions", {}).items():
        assert unquote(value["type"]) == "Microsoft.Web/sites/config@2025-05-01"
        found |= restriction_rules(unquote(config_id).split("/")[-3], json.loads(hcl_string(value["restrictions"])))
    resources = {unquote(k): v for block in data["resource"] for k, v in block.items()}
    for local, resource, name in (
        ("allowlist_sql_firewall_rules", "azurerm_mssql_firewall_rule", '"allowlist"'),
        ("allowlist_postgresql_firewall_rules", "azurerm_postgresql_flexible_server_firewall_rule", '"allowlist"'),
        ("allowlist_sql_ipv6_firewall_rules", "azapi_resource", '"allowlist_sql_ipv6"'),
    ):
        if local in local_values:  # every map a resource writes
            assert resources[resource][name]["for_each"] == f"${{local.{local}}}"
    return found


def restriction_rules(app: str, entries: list[dict[str, Any]]) -> set[Rule]:
    """An access-restriction list as rules: every entry that is an IP range."""
    found = set()
    for e in entries:
        r = restriction_range(e)
        if r is not None:
            found.add((app, e["name"], str(ipaddress.ip_address(r.first)), str(ipaddress.ip_address(r.last))))
    return found


def hcl_string(literal: str) -> str:
    """A quoted HCL string as Terraform reads it: "$${" and "%%{" are a literal "${" and "%{"."""
    return str(json.loads(literal)).replace("$${", "${").replace("%%{", "%{")


def arm_unescape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: arm_unescape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [arm_unescape(v) for v in value]
    return value[1:] if isinstance(value, str) and value.startswith("[[") else value


BICEP_TOKEN = re.compile(r"\s*(?:(?P<open>[{\[])|(?P<close>[}\]])|(?P<key>[A-Za-z_]\w*|'(?:[^'\\]|\\.)*'):(?!\S)"
                         r"|(?P<string>'(?:[^'\\]|\\.)*')|(?P<word>true|false|null|-?[\d.]+))")  # fmt: skip


def parse_bicep_value(text: str) -> Any:
    """The Bicep literals render writes (one item per line), read back as JSON values."""

    def string(token: str) -> str:
        return re.sub(r"\\(.)", r"\1", token[1:-1])

    def value(pos: int) -> tuple[Any, int]:
        m = BICEP_TOKEN.match(text, pos)
        assert m is not None, text[pos : pos + 40]
        if m["string"]:
            return string(m["string"]), m.end()
        if m["word"]:
            return json.loads(m["word"]), m.end()
        assert m["open"], text[pos : pos + 40]
        items: Any = {} if m["open"] == "{" else []
        pos = m.end()
        while True:
            m = BICEP_TOKEN.match(text, pos)
            assert m is not None, text[pos : pos + 40]
            if m["close"]:
                return items, m.end()
            if isinstance(items, dict):
                assert m["key"], text[pos : pos + 40]
                key = string(m["key"]) if m["key"].startswith("'") else m["key"]
                items[key], pos = value(m.end())
            else:
                item, pos = value(pos)
                items.append(item)

    return value(0)[0]


def _entry(account: str, entry: str) -> Rule:
    network = ipaddress.IPv4Network(entry, strict=False)
    return (account, entry, str(network[0]), str(network[-1]))


def parse_arm(files: dict[str, str]) -> set[Rule]:
    found = set()
    for name, text in files.items():
        template = json.loads(text)
        if template.get("resources", [{}])[0].get("type", "").endswith("/config"):  # an app's access restrictions
            app = template["parameters"]["appName"]["defaultValue"]
            entries = arm_unescape(template["resources"][0]["properties"]["ipSecurityRestrictions"])
            found |= restriction_rules(app, entries)
        elif "resources" in template:  # a deployable template for a server
            server = template["parameters"]["serverName"]["defaultValue"]
            assert template["resources"][0]["type"].endswith("/firewallRules")
            found |= {
                (server, r["name"], r.get("startIpAddress") or r["startIP"], r.get("endIpAddress") or r["endIP"])
                for r in template["variables"]["rules"]
            }
            found |= {
                (server, r["name"], r["startIPv6Address"], r["endIPv6Address"])
                for r in template["variables"].get("ipv6Rules", [])
            }
        else:  # parameters for the template that deploys an account
            items = template["parameters"]["allowlistIpRules"]["value"]
            found |= {_entry(name[: -len(".json")], i.get("ipAddressOrRange") or i["value"]) for i in items}
    return found


def parse_bicep(files: dict[str, str]) -> set[Rule]:
    found = set()
    for name, text in files.items():
        app = re.search(r"param appName string = '([^']+)'", text)
        if app is not None:
            listed = text[text.index("ipSecurityRestrictions: ") + len("ipSecurityRestrictions: ") :]
            found |= restriction_rules(app.group(1), parse_bicep_value(listed))
            continue
        server = re.search(r"param serverName string = '([^']+)'", text)
        if server is None:  # an account: the exported list
            account = name[: -len(".bicep")]
            found |= {_entry(account, e) for e in re.findall(r"\{ (?:ipAddressOrRange|value): '([^']+)'", text)}
            continue
        assert name == f"{server.group(1)}.bicep"
        found |= {
            (server.group(1), n, s, e)
            for n, s, e in re.findall(
                r"name: '([^']+)'\n\s+start(?:IpAddress|IP|IPv6Address): '([^']+)'\n"
                r"\s+end(?:IpAddress|IP|IPv6Address): '([^']+)'",
                text,
            )
        }
    return found


def parse_azcli(files: dict[str, str]) -> set[Rule]:
    (text,) = files.values()
    found = set()
    joined = text.replace("\\\n", " ")
    calls = re.findall(r"^sync_(server|flexible|redis|ipv6) (.*?)(?=\n\n|\nsync_|\Z)", joined, re.S | re.M)
    for function, call in calls:
        words = shlex.split(call)
        words = words[: words.index("--")]  # then the stale rules to delete
        # sync_server SUBSCRIPTION GROUP SERVER ... -- STALE...; sync_flexible SERVER_ID API_VERSION ... -- STALE...
        server, triples = (words[2], words[3:]) if function in ("server", "redis") else (words[0], words[2:])
        server = server.rsplit("/", 1)[-1]
        found |= {(server, *triples[i : i + 3]) for i in range(0, len(triples), 3)}  # type: ignore[misc]
    for call in re.findall(r"^sync_restrictions (.*?)(?:\n\n|\Z)", joined, re.S | re.M):
        words = shlex.split(call)
        words = words[: words.index("--")]
        app, pairs = words[2], words[5:]  # SUBSCRIPTION GROUP APP SLOT PRIORITY [NAME CIDRS]...
        for name, listed in zip(pairs[::2], pairs[1::2], strict=True):
            found |= restriction_rules(app, [{"name": name, "ipAddress": listed, "action": "Allow"}])
    return found


def parse_powershell(files: dict[str, str]) -> set[Rule]:
    (text,) = files.values()
    found = set()
    for server, body in re.findall(r"-Server '([^']+)' -Rules @\(\n(.*?)\n\)", text, re.S):
        found |= {(server, *m) for m in re.findall(r"Name = '([^']+)'; Start = '([^']+)'; End = '([^']+)'", body)}  # type: ignore[misc]
    return found


def azcli_additions(files: dict[str, str]) -> set[Rule]:
    """The az CLI script only adds to address lists: what it would add."""
    (text,) = files.values()
    found = set()
    for call in re.findall(r"^add_to_list (.*?)(?:\n\n|\Z)", text.replace("\\\n", " "), re.S | re.M):
        words = shlex.split(call)
        found |= {_entry(words[3], e) for e in words[4:]}
    return found


def parse_csv(files: dict[str, str]) -> set[Rule]:
    (text,) = files.values()
    lines = text.splitlines()
    assert lines[0] == "target,rule,start,end,app_id,app,address"  # the header first, as CSV readers expect
    rows = list(csv.DictReader(lines))
    assert all(r["address"] for r in rows)
    return {(r["target"].rsplit("/", 1)[-1], r["rule"], r["start"], r["end"]) for r in rows}


def parse_json(files: dict[str, str]) -> set[Rule]:
    (text,) = files.values()
    data = json.loads(text)
    assert (data["format"], data["version"]) == ("allowlist-inventory", 1)
    return {(t["name"], r["name"], r["start"], r["end"]) for t in data["targets"] for r in t["rules"]}


PARSERS = {
    "terraform": parse_terraform,
    "arm": parse_arm,
    "bicep": parse_bicep,
    "azcli": parse_azcli,
    "powershell": parse_powershell,
    "csv": parse_csv,
    "json": parse_json,
}


def test_the_az_cli_script_is_valid_bash(config: Path, tmp_path: Path, capsys: Cap) -> None:
    script = tmp_path / "allowlist.sh"
    script.write_text(cli(capsys, "render", "-f", "azcli", "-c", "allowlist.toml").out)
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (CI installs it)")
    result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_terraform_imports_adopt_rules_that_already_exist(config: Path, capsys: Cap) -> None:
    text = cli(capsys, "render", "-f", "terraform", "--with-imports", "-c", "allowlist.toml").out
    imports = hcl2.loads(text)["import"]
    assert [json.loads(i["id"]) for i in imports] == [f"{SQL1}/firewallRules/allowlist-30.0.0.1"]
    assert "import {" not in cli(capsys, "render", "-f", "terraform", "-c", "allowlist.toml").out


def test_output_is_deterministic_and_timestamps_only_when_asked(config: Path, capsys: Cap) -> None:
    first = cli(capsys, "render", "-f", "json", "-c", "allowlist.toml").out
    assert first == cli(capsys, "render", "-f", "json", "-c", "allowlist.toml", "--concurrency", "1").out
    assert json.loads(first)["timestamp"] is None
    stamped = json.loads(cli(capsys, "render", "-f", "json", "-c", "allowlist.toml", "--timestamp").out)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamped["timestamp"])


def test_a_custom_templates_folder_is_used(config: Path, tmp_path: Path, capsys: Cap) -> None:
    mine = tmp_path / "mine" / "terraform"
    mine.mkdir(parents=True)
    (mine / "rules.txt.j2").write_text(
        "{% for t in targets %}{% for r in t.rules %}{{ t.name }} {{ r.name }} {{ r.start }}-{{ r.end }}\n"
        "{% endfor %}{% endfor %}"
    )
    result = cli(capsys, "render", "-f", "terraform", "--templates", str(tmp_path / "mine"), "-c", "allowlist.toml")
    assert result.code == 0
    assert "sql-one allowlist-30.0.0.1 30.0.0.1-30.0.0.1\n" in result.out


def test_a_broken_custom_template_names_the_file(config: Path, tmp_path: Path, capsys: Cap) -> None:
    mine = tmp_path / "mine" / "csv"
    mine.mkdir(parents=True)
    (mine / "x.csv.j2").write_text("{{ no_such_variable }}")
    result = cli(capsys, "render", "-f", "csv", "--templates", str(tmp_path / "mine"), "-c", "allowlist.toml")
    assert result.code == 1 and "x.csv.j2: template error: 'no_such_variable' is undefined" in result.err


def test_the_rule_limit_fails_the_render_and_writes_nothing(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    write_config(tmp_path / "allowlist.toml", [{"name": "all", "targets": [SQL1]}], rule_limit=3)
    result = cli(capsys, "render", "-f", "bicep", "--out", str(tmp_path / "out"), "-c", "allowlist.toml")
    assert result.code == 1 and "over the limit of 3" in result.err and "nothing was written" in result.err
    assert not (tmp_path / "out").exists()


def test_incomplete_discovery_fails_the_render(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    next(s for s in cli_env.state.sites.values() if s.name == "web-b").possible_outbound_ip_addresses = ""
    write_config(tmp_path / "allowlist.toml", [{"name": "all", "targets": [SQL1]}])
    result = cli(capsys, "render", "-f", "terraform", "-c", "allowlist.toml")
    assert result.code == 1 and "web-b" in result.err and "not pinned" in result.err and result.out == ""


def test_render_usage_errors(config: Path, capsys: Cap) -> None:
    assert "unknown format 'yaml'" in cli(capsys, "render", "-f", "yaml", "-c", "allowlist.toml").err
    many = cli(capsys, "render", "-f", "bicep", "-c", "allowlist.toml")
    assert many.code == 1 and "bicep writes 9 files here (one per target): give --out DIR" in many.err
    assert cli(capsys, "render", "-c", "allowlist.toml").code == 1  # --format is required


ODD_ENTRIES = [  # what people put in access restrictions: every one must come back exactly as it was
    {"name": "office", "ipAddress": "198.51.100.0/24", "action": "Allow", "priority": 100, "tag": "Default"},
    {"name": "block", "ipAddress": "203.0.113.0/24", "action": "Deny", "priority": 50, "tag": "Default",
     "description": "[legacy] ${not.a.variable} %{nor} 'quoted' \\ back"},
    {"name": "front-door", "ipAddress": "AzureFrontDoor.Backend", "action": "Allow", "priority": 200,
     "tag": "ServiceTag", "headers": {"x-azure-fdid": ["0000", "1111"]}},
    {"name": "[bracketed]", "ipAddress": "192.0.2.0/24", "action": "Allow", "priority": 300, "tag": "Default"},
    {"name": "vnet", "vnetSubnetResourceId": f"{API}/../subnets/x", "action": "Allow", "priority": 400,
     "tag": "Default", "ipAddress": None},
]  # fmt: skip


@pytest.mark.parametrize("slot", [False, True], ids=["app", "slot"])
def test_access_restrictions_render_as_the_whole_list_apply_leaves(
    cli_env: Emulator, tmp_path: Path, capsys: Cap, slot: bool
) -> None:
    """terraform, arm and bicep write an app's (or a slot's) whole list: exactly what apply leaves there."""
    site = cli_env.state.sites[API.lower()]
    app = site.slots.setdefault("qa", replace(site, slot="qa", slots={})) if slot else site
    app.ip_security_restrictions[:] = [dict(e) for e in ODD_ENTRIES]
    target = f"{API}/slots/qa" if slot else API
    write_config(tmp_path / "allowlist.toml", [{"name": "api", "targets": [target]}], poll_interval=0)
    rendered = render_all(capsys, tmp_path / "out", formats=("terraform", "arm", "bicep", "azcli"))
    assert cli(capsys, "apply", "--yes", "-c", "allowlist.toml").code == 0
    after = app.ip_security_restrictions
    assert after[: len(ODD_ENTRIES)] == ODD_ENTRIES and len(after) > len(ODD_ENTRIES)
    file = "web-b.qa" if slot else "web-b"
    local = hcl2.loads(rendered["terraform"]["allowlist.tf"])["locals"][0]["allowlist_access_restrictions"]
    ((config_id, value),) = local.items()
    assert json.loads(config_id) == f"{target}/config/web"
    assert json.loads(value["type"]) == f"Microsoft.Web/sites/{'slots/' if slot else ''}config@2025-05-01"
    assert json.loads(hcl_string(value["restrictions"])) == after
    template = json.loads(rendered["arm"][f"{file}.json"])
    assert template["resources"][0]["type"] == f"Microsoft.Web/sites/{'slots/' if slot else ''}config"
    assert arm_unescape(template["resources"][0]["properties"]["ipSecurityRestrictions"]) == after
    bicep = rendered["bicep"][f"{file}.bicep"]
    assert ("param slotName string = 'qa'" in bicep) == slot
    assert parse_bicep_value(bicep[bicep.index("ipSecurityRestrictions: ") + 24 :]) == after
    ours = {r[1:] for r in restriction_rules("web-b", after) if r[1].startswith("allowlist-")}
    assert {r[1:] for r in parse_azcli(rendered["azcli"])} == ours
    assert (" web-b qa 65000 " if slot else " web-b '' 65000 ") in rendered["azcli"]["allowlist.sh"]


def test_an_app_without_access_restrictions_is_refused_by_every_format(
    cli_env: Emulator, tmp_path: Path, capsys: Cap
) -> None:
    cli_env.state.sites[API.lower()].ip_security_restrictions.clear()  # it accepts every client
    write_config(tmp_path / "allowlist.toml", [{"name": "api", "targets": [API]}], poll_interval=0)
    for fmt in FORMATS:
        refused = cli(capsys, "render", "-f", fmt, "--out", str(tmp_path / fmt), "-c", "allowlist.toml")
        assert refused.code == 1 and "web-b" in refused.err, (fmt, refused.err)
        assert not (tmp_path / fmt).exists()


def test_sql_ipv6_rules_render_in_every_iac_format(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    """SQL keeps IPv6 rules in ipv6FirewallRules: terraform (azapi), bicep, arm and the az CLI script write
    exactly the IPv6 rules apply makes, next to the IPv4 ones."""
    for site in cli_env.state.sites.values():
        if site.name == "web-a":
            for app in (site, *site.slots.values()):
                app.possible_outbound_ipv6_addresses = "2603:1020:206:3::1a,2603:1020:206:3::1b"
    write_config(tmp_path / "allowlist.toml", [{"name": "sql", "targets": [SQL1]}], poll_interval=0)
    formats = ("terraform", "arm", "bicep", "azcli")
    parsed = {fmt: PARSERS[fmt](files) for fmt, files in render_all(capsys, tmp_path / "out", formats=formats).items()}
    after_apply = {r for r in managed_after_apply(cli_env, capsys) if r[0] == "sql-one"}
    v6 = (
        "sql-one",
        "allowlist-v6-2603_1020_206_3__1a-2603_1020_206_3__1b",
        "2603:1020:206:3::1a",
        "2603:1020:206:3::1b",
    )
    assert v6 in after_apply and any(r[1].startswith("allowlist-2") for r in after_apply)
    for fmt in formats:
        assert parsed[fmt] == after_apply, fmt
