"""Bad input of every kind: one clear `error:` line, a non-zero exit, no traceback, and nothing written.

Config files, flags, saved plans edited in every way a pipeline stage could, payloads of every JSON
type, and endpoints that cannot be reached or trusted, all against the emulator with the real CLI.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from allowlist.cli.options import make_clients
from allowlist.emulator import Emulator, FaultConfig
from allowlist.emulator.state import FirewallRule
from allowlist.planfile import digest
from tests.cli_helpers import Result, any_writes, cli, write_config
from tests.conftest import SQL1, SQL2, SUB1

Cap = pytest.CaptureFixture[str]


def assert_refused(result: Result, emu: Emulator, needle: str, code: int = 1) -> None:
    assert result.code == code, (result.code, result.err)
    assert "Traceback" not in result.err
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.err
    assert needle in result.err, result.err
    assert any_writes(emu) == [], "nothing may be written"


# --- config files ----------------------------------------------------------------------------------

SYNC = f'[[sync]]\nname = "a"\ntargets = ["{SQL1}"]\n'
CONFIGS = [
    ("not toml [", "not valid TOML"),
    ("[settings]\nprefix = 1\n", "settings.prefix: has the wrong type (int)"),
    ('[settings]\nprefix = ""\n' + SYNC, "the rule prefix cannot be empty"),
    ('[settings]\nprefix = "a/b-"\n' + SYNC, "contains a character SQL rule names cannot hold"),
    ('[settings]\nprefix = "' + "p" * 97 + '"\n' + SYNC, "longer than 96 characters"),
    ('[settings]\naddresses = "all"\n' + SYNC, "settings.addresses: must be 'possible'"),
    ("[settings]\nmax_delete_percent = 101\n" + SYNC, "must be between 0 and 100"),
    ("[settings]\nmax_delete_percent = -1\n" + SYNC, "must be between 0 and 100"),
    ('[settings]\nmax_delete_percent = "30"\n' + SYNC, "has the wrong type (str)"),
    ("[settings]\nrule_limit = 0\n" + SYNC, "settings.rule_limit: must be at least 1"),
    ("[settings]\nrule_limit = 1.5\n" + SYNC, "settings.rule_limit: has the wrong type (float)"),
    ("[settings]\nrule_limit = true\n" + SYNC, "settings.rule_limit: has the wrong type (bool)"),
    ("[settings]\nconcurrency = 0\n" + SYNC, "settings.concurrency: must be at least 1"),
    ("[settings]\ntimeout = 0\n" + SYNC, "settings.timeout: must be at least 1"),
    ("[settings]\nlease_seconds = 0\n" + SYNC, "settings.lease_seconds: must be at least 1"),
    ("[settings]\nrestriction_priority = 0\n" + SYNC, "settings.restriction_priority: must be at least 1"),
    ("[settings]\nrestriction_priority = 2147483647\n" + SYNC, "settings.restriction_priority: must be below"),
    ('[settings]\nrestriction_priority = "high"\n' + SYNC, "settings.restriction_priority"),
    ("[settings]\nretry_total = -1\n" + SYNC, "settings.retry_total: cannot be negative"),
    ("[settings]\npoll_interval = -1\n" + SYNC, "settings.poll_interval: cannot be negative"),
    ('[settings]\nallow_wide_ranges = "yes"\n' + SYNC, "settings.allow_wide_ranges: has the wrong type"),
    ("[settings]\nbogus = 1\n" + SYNC, "settings.bogus: unknown setting"),
    ("settings = 3\n", "settings: must be a table"),
    ("[extra]\n", "extra: unknown key"),
    ("sync = 3\n", "sync: must be an array of tables"),
    ("[[sync]]\nname = 'a'\n", "sync[0].targets: needs at least one target"),
    ("[[sync]]\ntargets = 5\n", "sync[0].targets: must be a list of non-empty strings"),
    ('[[sync]]\ntargets = [""]\n', "sync[0].targets: must be a list of non-empty strings"),
    ('[[sync]]\ntargets = ["sql-one"]\n', "sync[0].targets[0]: 'sql-one' is not a resource ID"),
    (
        '[[sync]]\ntargets = ["/subscriptions/s/resourceGroups/g/providers/Microsoft.Foo/bars/x"]\n',
        "Microsoft.Foo/bars is not a supported target",
    ),
    (
        '[[sync]]\ntargets = ["/subscriptions/s/resourceGroups/g/providers/Microsoft.Sql/servers/x/slots/y"]\n',
        "only App Service apps have deployment slots",
    ),
    (SYNC + "bogus = 1\n", "sync[0].bogus: unknown key"),
    (SYNC + "tags = 3\n", "sync[0].tags: must be a table of strings"),
    (SYNC + "tags = { team = 1 }\n", "sync[0].tags: must be a table of strings"),
    (SYNC + 'slots = "no"\n', "sync[0].slots: must be true or false"),
    (SYNC + "subscriptions = [1]\n", "sync[0].subscriptions: must be a list of non-empty strings"),
    (f'[[sync]]\nname = ""\ntargets = ["{SQL1}"]\n', "sync[0].name: must be a non-empty string"),
    (SYNC + SYNC, "the name 'a' is used by more than one [[sync]] block"),
    ("[settings]\n", "nothing to sync"),
    ("[settings]\nfunctions_pinned = 1\n" + SYNC, "settings.functions_pinned: has the wrong type"),
    (SYNC + "egress = 3\n", "sync[0].egress: unknown key"),
    ("egress = 3\n" + SYNC, "egress: must be an array of tables"),
    (SYNC + '[[egress]]\nsubnets = ["/x"]\n', "egress[0].addresses: needs at least one"),
    (SYNC + '[[egress]]\nsubnets = ["/x"]\naddresses = ["10.0.0.1"]\n', "'10.0.0.1' is not a public range"),
    (SYNC + '[[egress]]\nsubnets = ["/x"]\naddresses = ["52.0.0.0/8"]\n', "wider than a /16"),
    (SYNC + '[[egress]]\nsubnets = ["/x"]\naddresses = ["52.0.0.1/8"]\n', "is not an IPv4 address or CIDR"),
    (SYNC + '[[egress]]\naddresses = ["52.0.0.1"]\n', "give either subnets"),
    (SYNC + '[[egress]]\nsubnets = ["/x"]\nnames = ["a"]\naddresses = ["52.0.0.1"]\n', "not both"),
    (SYNC + '[[egress]]\nsubnets = ["/x"]\naddresses = ["52.0.0.1"]\nvia = "fw"\n', "egress[0].via: unknown key"),
    (SYNC + '[[acknowledge]]\nnames = ["a"]\n', "acknowledge[0].reason: is required"),
    (SYNC + '[[acknowledge]]\nreason = "x"\n', "needs an app selector"),
    (SYNC + 'addresses = ["10.1.2.3"]\n', "sync[0].addresses[0]: '10.1.2.3' is not a public range"),
    (SYNC + 'addresses = ["52.0.0.0/8"]\n', "sync[0].addresses[0]: '52.0.0.0/8' is too wide"),
    (SYNC + 'addresses = ["office"]\n', "sync[0].addresses[0]: 'office' is not an IP address or CIDR"),
    (SYNC + "label = 3\n", "sync[0].label: must be a string"),
]


@pytest.mark.parametrize(("text", "needle"), CONFIGS, ids=[f"config-{i}" for i in range(len(CONFIGS))])
@pytest.mark.parametrize("command", ["plan", "apply"])
def test_bad_config(text: str, needle: str, command: str, cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    (tmp_path / "allowlist.toml").write_text(text)
    args = [command, "-c", "allowlist.toml"] + (["--yes"] if command == "apply" else [])
    assert_refused(cli(capsys, *args), cli_env, needle)
    assert cli_env.requests == [], "a bad config never reaches ARM"


def test_a_missing_or_unreadable_config(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    assert_refused(cli(capsys, "plan", "-c", "nope.toml"), cli_env, "nope.toml: config file not found")
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00")
    assert_refused(cli(capsys, "plan", "-c", "bin.toml"), cli_env, "cannot read the config file")


# --- flags -----------------------------------------------------------------------------------------

FLAGS = [
    (["plan", "-t", SQL1, "--rule-limit", "0"], "--rule-limit"),
    (["plan", "-t", SQL1, "--concurrency", "0"], "--concurrency"),
    (["plan", "-t", SQL1, "--concurrency", "65"], "--concurrency"),
    (["plan", "-t", SQL1, "--timeout", "0"], "--timeout"),
    (["plan", "-t", "sql-one"], "--target: 'sql-one' is not a resource ID"),
    (["plan", "-t", SQL1, "--tag", "team"], "--tag 'team': expected KEY=VALUE"),
    (["plan", "-t", SQL1, "--prefix", " "], "the rule prefix cannot be empty"),
    (["plan", "-t", SQL1, "--prefix", "a:b"], "contains a character SQL rule names cannot hold"),
    (["plan", "-t", SQL1, "--arm-endpoint", "http://127.0.0.1:1"], "must be an https:// URL"),
    (["plan", "-t", SQL1, "-o", "yaml"], "'yaml' is not one of"),
    (["plan", "--bogus"], "No such option: --bogus"),
    (["frobnicate"], "No such command 'frobnicate'"),
    (["render", "-t", SQL1, "--format", "nope"], "unknown format 'nope'"),
    (["render", "-t", SQL1], "Missing option '--format'"),
    (["apply", "-t", SQL1], "apply needs --yes when it cannot ask"),
]


@pytest.mark.parametrize(("args", "needle"), FLAGS, ids=[f"flags-{i}" for i in range(len(FLAGS))])
def test_bad_flags(args: list[str], needle: str, cli_env: Emulator, capsys: Cap) -> None:
    assert_refused(cli(capsys, *args), cli_env, needle)


# --- saved plans, edited between two pipeline stages -----------------------------------------------


@pytest.fixture
def saved(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> dict[str, Any]:
    """A plan with creates and a delete: allowlist-5.5.5.5 is allowlist's and no app needs it."""
    cli_env.state.servers[SQL1.lower()].rules["allowlist-5.5.5.5"] = FirewallRule(
        "allowlist-5.5.5.5", "5.5.5.5", "5.5.5.5"
    )
    config = write_config(tmp_path / "allowlist.toml", [{"name": "one", "targets": [SQL1], "subscriptions": [SUB1]}])
    assert cli(capsys, "plan", "-c", str(config), "--out", "plan.json").code == 0
    cli_env.reset_log()
    data: dict[str, Any] = json.loads(Path("plan.json").read_text())
    return data


def _target(data: dict[str, Any]) -> dict[str, Any]:
    return data["targets"][0]  # type: ignore[no-any-return]


def _change(action: str, name: str, start: str, end: str | None = None) -> dict[str, Any]:
    return {"action": action, "name": name, "start": start, "end": end or start, "apps": []}


def _add(change: dict[str, Any]) -> Any:
    return lambda d: _target(d)["changes"].append(change)


def _set(key: str, value: Any) -> Any:
    return lambda d: d.__setitem__(key, value)


def _policy(key: str, value: Any) -> Any:
    return lambda d: d["policy"].__setitem__(key, value)


def _wide_and_allowed(d: dict[str, Any]) -> None:
    d["policy"]["allow_wide_ranges"] = True
    _target(d)["changes"].append(_change("create", "allowlist-20.0.0.0-20.255.255.255", "20.0.0.0", "20.255.255.255"))


def _many_creates(d: dict[str, Any]) -> None:
    _target(d)["changes"] += [_change("create", f"allowlist-60.0.{i}.1", f"60.0.{i}.1") for i in range(130)]


def _drop_delete(d: dict[str, Any]) -> None:
    _target(d)["changes"] = [c for c in _target(d)["changes"] if c["action"] != "delete"]


def _repoint(d: dict[str, Any]) -> None:
    first = _target(d)["changes"][0]
    first["start"] = first["end"] = "31.0.0.1"


EDITS: list[tuple[str, Any, str]] = [
    ("delete a person's rule", _add(_change("delete", "office", "198.51.100.0", "198.51.100.255")), "does not own"),
    ("delete allow-Azure", _add(_change("delete", "AllowAllWindowsAzureIps", "0.0.0.0")), "does not own"),
    ("delete what is not there", _add(_change("delete", "allowlist-9.9.9.9", "9.9.9.9")), "which is not there"),
    ("a /8 rule", _add(_change("create", "allowlist-20.0.0.0-20.255.255.255", "20.0.0.0", "20.255.255.255")),
     "wider than a /16"),
    ("a /8 rule, wide ranges allowed in the file", _wide_and_allowed, "stale"),
    ("a rule without the prefix", _add(_change("create", "evil", "1.2.3.4")), "not a name allowlist writes"),
    ("a managed name at another range", _repoint, "holding 31.0.0.1, but its name says 20.0.0.1-20.0.0.3"),
    ("an existing name", _add(_change("create", "office", "1.2.3.4")), "not a name allowlist writes"),
    ("past the rule limit", _many_creates, "over the limit of 128"),
    ("a delete of a managed rule at another range", _add(_change("delete", "allowlist-5.5.5.5", "5.5.5.6")),
     "but it holds 5.5.5.5"),
    ("a change no fresh plan makes", _drop_delete, "stale"),
    ("prefix o to claim office", _policy("prefix", "o"), "'allowlist-5.5.5.5', which allowlist does not own"),
    ("an unknown action", _add(_change("nuke", "office", "1.1.1.1")), "unknown action 'nuke'"),
    ("an update", _add(_change("update", "allowlist-5.5.5.5", "5.5.5.5")), "unknown action 'update'"),
    ("an action of another type", _add({**_change("create", "allowlist-1.1.1.1", "1.1.1.1"), "action": 7}),
     "unknown action 7"),
    ("a start that is no address", _add(_change("create", "allowlist-1.1.1.1", "one")), "the plan is damaged"),
    ("a start after its end", _add(_change("create", "allowlist-1.1.1.9", "1.1.1.9", "1.1.1.1")),
     "the plan is damaged"),
    ("a name that is a number", _add({**_change("create", "x", "1.1.1.1"), "name": 5}), "name must be a string"),
    ("a change that is a string", _add("create everything"), "a change must be an object"),
    ("changes missing", lambda d: _target(d).pop("changes"), "missing field 'changes'"),
    ("targets not a list", _set("targets", {}), "targets must be a list"),
    ("policy missing a key", lambda d: d["policy"].pop("prefix"), "policy must hold exactly"),
    ("an empty prefix", _policy("prefix", ""), "the rule prefix cannot be empty"),
    ("a rule limit of text", _policy("rule_limit", "many"), "has the wrong type"),
    ("a target that is no resource ID", lambda d: _target(d).__setitem__("id", "sql-one"), "is not a resource ID"),
    ("a target of an unsupported type", lambda d: _target(d).__setitem__("id", SQL1.replace("Sql/servers", "Foo/x")),
     "is not a supported target"),
    ("a target the scope does not name", lambda d: _target(d).__setitem__("id", SQL2), "not the ones its scope names"),
    ("an unknown finding kind", lambda d: _target(d)["findings"].append({"kind": "fine", "message": ""}),
     "unknown finding kind"),
    ("apps not a list", _set("apps", "none"), "apps must be a list"),
    ("scope null", _set("scope", None), "scope must be an object, not null"),
    ("version 1", _set("version", 1), "plan version 1 is not supported"),
]  # fmt: skip


@pytest.mark.parametrize(("edit", "needle"), [(e, n) for _, e, n in EDITS], ids=[i for i, _, _ in EDITS])
def test_an_edited_saved_plan_is_refused(
    edit: Any, needle: str, saved: dict[str, Any], cli_env: Emulator, capsys: Cap
) -> None:
    edit(saved)
    saved["digest"] = digest(saved)  # as someone who meant it would: the checks must not rely on the digest
    Path("plan.json").write_text(json.dumps(saved))
    assert_refused(cli(capsys, "apply", "plan.json"), cli_env, needle)


FILES = [
    ("a changed byte", lambda t: t.replace("30.0.0.1", "30.0.0.2", 1), "changed after it was saved"),
    ("no digest", lambda t: json.dumps({k: v for k, v in json.loads(t).items() if k != "digest"}), "changed after"),
    ("not JSON", lambda t: t[:-20], "not a readable plan file"),
    ("empty", lambda t: "", "not a readable plan file"),
    ("a JSON list", lambda t: "[]", "not an allowlist plan"),
    ("another format", lambda t: '{"format": "terraform"}', "not an allowlist plan"),
]


@pytest.mark.parametrize(("change", "needle"), [(c, n) for _, c, n in FILES], ids=[i for i, _, _ in FILES])
def test_a_damaged_plan_file_is_refused(
    change: Any, needle: str, saved: dict[str, Any], cli_env: Emulator, capsys: Cap
) -> None:
    path = Path("plan.json")
    path.write_text(change(path.read_text()))
    assert_refused(cli(capsys, "apply", "plan.json"), cli_env, needle)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--prefix", "x-"], "--prefix would not apply"),
        (["--rule-limit", "5"], "--rule-limit would not apply"),
        (["--allow-wide-ranges"], "--allow-wide-ranges would not apply"),
        (["--current-only"], "--current-only would not apply"),
        (["-t", SQL1], "carries its own scope"),
    ],
)
def test_a_saved_plan_takes_no_policy_or_scope_flags(
    args: list[str], needle: str, saved: dict[str, Any], cli_env: Emulator, capsys: Cap
) -> None:
    assert_refused(cli(capsys, "apply", "plan.json", *args), cli_env, needle)


def test_runtime_flags_are_fine_with_a_saved_plan(saved: dict[str, Any], cli_env: Emulator, capsys: Cap) -> None:
    result = cli(capsys, "apply", "plan.json", "--concurrency", "2", "--timeout", "60")
    assert result.code == 0, result.err


def test_a_saved_plan_runs_with_the_configs_runtime_settings_and_its_own_policy(
    saved: dict[str, Any], cli_env: Emulator, capsys: Cap, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Applying a saved plan polls as the config says (a 5-second default would make every write slow) and
    ignores the config's policy: the plan's prefix stands even when the config has changed since."""
    seen: list[Any] = []
    monkeypatch.setattr("allowlist.cli.options.make_clients", lambda endpoint, settings: seen.append(settings) or
                        make_clients(endpoint, settings))  # fmt: skip
    Path("runtime.toml").write_text('[settings]\npoll_interval = 0.25\nconcurrency = 3\nprefix = "other-"\n'
                                    '[[sync]]\ntargets = ["' + SQL1 + '"]\n')  # fmt: skip
    result = cli(capsys, "apply", "plan.json", "-c", "runtime.toml")
    assert result.code == 0, result.err
    assert (seen[-1].poll_interval, seen[-1].concurrency, seen[-1].prefix) == (0.25, 3, "allowlist-")


# --- payloads of every JSON type -------------------------------------------------------------------

ODD = [None, 7, 1.5, True, [], ["20.0.0.1"], {}, {"a": 1}]
TYPE_NAME = {
    type(None): "null",
    int: "a number",
    float: "a number",
    bool: "true/false",
    list: "a list",
    dict: "an object",
}


@pytest.mark.parametrize("value", ODD, ids=[repr(v) for v in ODD])
def test_an_odd_address_property_makes_the_app_not_pinned_with_a_precise_reason(
    value: Any, cli_env: Emulator, tmp_path: Path, capsys: Cap
) -> None:
    site = next(s for s in cli_env.state.sites.values() if s.name == "web-b")
    site.overrides = {"properties.possibleOutboundIpAddresses": value}
    config = write_config(tmp_path / "allowlist.toml", [{"name": "one", "targets": [SQL1], "subscriptions": [SUB1]}])
    result = cli(capsys, "plan", "-c", str(config))
    if value is None:  # the same as absent: empty
        reason = "possibleOutboundIpAddresses is empty"
    else:
        reason = f"possibleOutboundIpAddresses is {TYPE_NAME[type(value)]}, not a list of addresses"
    assert_refused(result, cli_env, reason)
    assert "web-b" in result.err


@pytest.mark.parametrize(
    "overrides",
    [
        {"properties": 7},
        {"properties": []},
        {"properties": None},
        {"tags": [1, 2]},
        {"tags": {"team": 5}},
        {"kind": 12},
        {"location": {}},
        {"properties.sku": 3},
        {"properties.outboundVnetRouting": "yes"},
        {"properties.possibleOutboundIpv6Addresses": 6},
        {"id": 42},
        {"id": "/not/a/site"},
    ],
    ids=lambda o: json.dumps(o),
)
def test_an_odd_payload_out_of_scope_changes_nothing(
    overrides: dict[str, Any], cli_env: Emulator, tmp_path: Path, capsys: Cap
) -> None:
    """func-c is in another resource group than the block selects: its payload may be anything."""
    site = next(s for s in cli_env.state.sites.values() if s.name == "func-c")
    site.overrides = overrides
    block = {"name": "one", "targets": [SQL1], "subscriptions": [SUB1], "resource_groups": ["rg-web"]}
    config = write_config(tmp_path / "allowlist.toml", [block])
    result = cli(capsys, "plan", "-c", str(config))
    if "id" in overrides:  # a list item that names no site: which app it is cannot be known, so deletes wait
        assert_refused(result, cli_env, "1 listed site(s) are not readable app payloads")
    else:
        assert result.code == 0, result.err
        assert "Plan: 2 to add, 0 to remove." in result.out


@pytest.mark.parametrize(
    "overrides",
    [
        {"properties.startIpAddress": 5},
        {"properties.startIpAddress": None},
        {"properties.endIpAddress": "not an address"},
        {"properties": []},
        {"properties.startIpAddress": "9.9.9.9", "properties.endIpAddress": "1.1.1.1"},
    ],
    ids=lambda o: json.dumps(o),
)
def test_an_odd_firewall_rule_is_kept_counted_and_reported(
    overrides: dict[str, Any], cli_env: Emulator, tmp_path: Path, capsys: Cap
) -> None:
    server = cli_env.state.servers[SQL1.lower()]
    server.rule_overrides["office"] = overrides
    config = write_config(tmp_path / "allowlist.toml", [{"name": "one", "targets": [SQL1], "subscriptions": [SUB1]}])
    result = cli(capsys, "plan", "-c", str(config), "--rule-limit", "4")
    assert "rule 'office' does not hold a readable IP range" in result.out
    assert_refused(result, cli_env, "would hold 5 firewall rules")  # it still counts toward the limit


def test_an_odd_subscription_list_is_survived(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    sub = next(iter(cli_env.state.subscriptions.values()))
    sub.state = 7  # type: ignore[assignment]
    config = write_config(tmp_path / "allowlist.toml", [{"name": "one", "targets": [SQL1]}])
    result = cli(capsys, "plan", "-c", str(config))
    assert "Traceback" not in result.err and result.code in (0, 1)


# --- endpoints that cannot be reached or trusted ---------------------------------------------------


def test_an_untrusted_certificate_fails_at_once_with_a_hint(
    cli_env: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: Cap
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    result = cli(capsys, "plan", "-t", SQL1)
    assert_refused(result, cli_env, "TLS certificate is not trusted")
    assert "REQUESTS_CA_BUNDLE" in result.err


def test_a_refused_connection_fails_at_once(cli_env: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: Cap) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("ALLOWLIST_ARM_ENDPOINT", f"https://127.0.0.1:{port}")
    assert_refused(cli(capsys, "plan", "-t", SQL1), cli_env, "nothing is listening at the endpoint")


def test_an_unknown_host_fails_at_once(cli_env: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: Cap) -> None:
    """No query may leave this machine, so the resolver's answer for the one made-up name is given here."""
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "arm.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    monkeypatch.setenv("ALLOWLIST_ARM_ENDPOINT", "https://arm.invalid")
    assert_refused(cli(capsys, "plan", "-t", SQL1), cli_env, "host name does not resolve")


def test_a_missing_target_is_never_called_no_changes(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    gone = SQL1.replace("sql-one", "sql-gone")
    result = cli(capsys, "plan", "-t", gone, "-o", "markdown")
    assert_refused(result, cli_env, "404")
    assert (
        "No changes. The firewalls match" not in result.out
        and "Incomplete: 1 target(s) could not be read" in result.out
    )


def test_the_timeout_bounds_a_run(cli_env: Emulator, capsys: Cap) -> None:
    cli_env.faults.config = FaultConfig(latency_ms=400)
    assert_refused(cli(capsys, "plan", "-t", SQL1, "--timeout", "1"), cli_env, "reached its --timeout")


def test_an_unexpected_error_is_one_line_and_exit_3(
    cli_env: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: Cap
) -> None:
    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("a bug, with secret-pipeline-token inside")

    monkeypatch.setattr("allowlist.report.plan_text", broken)
    result = cli(capsys, "plan", "-t", SQL1)
    assert_refused(result, cli_env, "unexpected RuntimeError: a bug, with <redacted> inside", code=3)
    assert "ALLOWLIST_DEBUG=1" in result.err
