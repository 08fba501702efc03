"""`allowlist render`: every format matches its golden file, parses back, and holds exactly the rules
`apply` leaves on the servers (same names, same ranges), so teams can switch modes without churn."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import hcl2
import pytest

from allowlist.emulator import Emulator
from allowlist.emulator.state import FirewallRule
from allowlist.render import FORMATS
from tests.cli_helpers import cli, write_config
from tests.conftest import SQL1, SQL2

Cap = pytest.CaptureFixture[str]
GOLDEN = Path(__file__).parent / "golden" / "render"
Rule = tuple[str, str, str, str]  # (server name, rule name, start, end)


@pytest.fixture
def config(cli_env: Emulator, tmp_path: Path) -> Path:
    """Both servers; sql-one already holds one rule allowlist keeps and one it would remove."""
    rules = cli_env.state.servers[SQL1.lower()].rules
    rules["allowlist-30.0.0.1"] = FirewallRule("allowlist-30.0.0.1", "30.0.0.1", "30.0.0.1")
    rules["allowlist-5.5.5.5"] = FirewallRule("allowlist-5.5.5.5", "5.5.5.5", "5.5.5.5")
    return write_config(tmp_path / "allowlist.toml", [{"name": "all", "targets": [SQL1, SQL2]}])


def render_all(capsys: Cap, out: Path, *extra: str) -> dict[str, dict[str, str]]:
    rendered = {}
    for fmt in FORMATS:
        result = cli(capsys, "render", "--format", fmt, "--out", str(out / fmt), "-c", "allowlist.toml", *extra)
        assert result.code == 0, result.err
        rendered[fmt] = {p.name: p.read_text() for p in sorted((out / fmt).iterdir())}
    return rendered


def managed_after_apply(emu: Emulator, capsys: Cap) -> set[Rule]:
    assert cli(capsys, "apply", "--yes", "-c", "allowlist.toml").code == 0
    return {
        (server_id.rsplit("/", 1)[-1], r["name"], r["start"], r["end"])
        for server_id, rules in emu.state.snapshot().items()
        for r in rules
        if r["name"].startswith("allowlist-")
    }


def test_every_format_matches_its_golden_file(config: Path, tmp_path: Path, capsys: Cap) -> None:
    rendered = render_all(capsys, tmp_path / "out")
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
    rendered = render_all(capsys, tmp_path / "out")
    parsed = {fmt: PARSERS[fmt](files) for fmt, files in rendered.items()}
    after_apply = managed_after_apply(cli_env, capsys)
    assert ("sql-one", "allowlist-30.0.0.1", "30.0.0.1", "30.0.0.1") in after_apply  # kept
    assert not any(r[1] == "allowlist-5.5.5.5" for r in after_apply)  # removed
    for fmt, rules in parsed.items():
        assert rules == after_apply, fmt


def parse_terraform(files: dict[str, str]) -> set[Rule]:
    (text,) = files.values()
    data = hcl2.loads(text)
    entries = data["locals"][0]["allowlist_firewall_rules"]
    unquote = json.loads
    found = set()
    for key, rule in entries.items():
        server = unquote(rule["server_id"]).rsplit("/", 1)[-1]
        name = unquote(rule["name"])
        assert unquote(key) == f"{server}/{name}"  # static keys
        found.add((server, name, unquote(rule["start_ip_address"]), unquote(rule["end_ip_address"])))
    resource = data["resource"][0]['"azurerm_mssql_firewall_rule"']['"allowlist"']
    assert resource["for_each"] == "${local.allowlist_firewall_rules}"
    return found


def parse_arm(files: dict[str, str]) -> set[Rule]:
    found = set()
    for text in files.values():
        template = json.loads(text)
        server = template["parameters"]["serverName"]["defaultValue"]
        assert template["resources"][0]["type"] == "Microsoft.Sql/servers/firewallRules"
        found |= {(server, r["name"], r["startIpAddress"], r["endIpAddress"]) for r in template["variables"]["rules"]}
    return found


def parse_bicep(files: dict[str, str]) -> set[Rule]:
    found = set()
    for name, text in files.items():
        server = re.search(r"param serverName string = '([^']+)'", text)
        assert server and name == f"{server.group(1)}.bicep"
        found |= {
            (server.group(1), n, s, e)
            for n, s, e in re.findall(
                r"name: '([^']+)'\n\s+startIpAddress: '([^']+)'\n\s+endIpAddress: '([^']+)'", text
            )
        }
    return found


def parse_azcli(files: dict[str, str]) -> set[Rule]:
    (text,) = files.values()
    found = set()
    for call in re.findall(r"^sync_server (.*?)(?:\n\n|\Z)", text.replace("\\\n", " "), re.S | re.M):
        words = shlex.split(call)
        server, triples = words[2], words[3:]
        found |= {(server, *triples[i : i + 3]) for i in range(0, len(triples), 3)}  # type: ignore[misc]
    return found


def parse_powershell(files: dict[str, str]) -> set[Rule]:
    (text,) = files.values()
    found = set()
    for server, body in re.findall(r"-Server '([^']+)' -Rules @\(\n(.*?)\n\)", text, re.S):
        found |= {(server, *m) for m in re.findall(r"Name = '([^']+)'; Start = '([^']+)'; End = '([^']+)'", body)}  # type: ignore[misc]
    return found


def parse_csv(files: dict[str, str]) -> set[Rule]:
    (text,) = files.values()
    lines = text.splitlines()
    assert lines[0].startswith("# Generated by allowlist")
    rows = list(csv.DictReader(lines[1:]))
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
    assert many.code == 1 and "bicep writes 2 files here (one per server): give --out DIR" in many.err
    assert cli(capsys, "render", "-c", "allowlist.toml").code == 1  # --format is required
