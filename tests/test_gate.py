"""One gate decides for every mode: the same unsafe plan is refused the same way by plan, apply,
apply FILE and render, and --force lifts only the delete threshold."""

from __future__ import annotations

from pathlib import Path

import pytest

from allowlist.emulator import Emulator
from allowlist.emulator.state import FirewallRule
from allowlist.findings import Finding, Kind
from allowlist.gate import decide
from tests.cli_helpers import any_writes, cli, write_config
from tests.conftest import SQL1, SUB1

Cap = pytest.CaptureFixture[str]


def test_each_kind_has_one_policy_in_every_mode() -> None:
    limit = Finding(Kind.RULE_LIMIT, "too many", "/t")
    threshold = Finding(Kind.DELETE_THRESHOLD, "too many deletes", "/t")
    gap = Finding(Kind.INCOMPLETE, "403", "/t")
    note = Finding(Kind.TAMPERED, "edited", "/t")
    for mode in ("plan", "apply", "apply-file", "render"):
        verdict = decide([limit, threshold, gap, note], mode, force=False)  # type: ignore[arg-type]
        assert limit in verdict.refused and threshold in verdict.refused and note not in verdict.refused
        forced = decide([threshold, gap], mode, force=True)  # type: ignore[arg-type]
        assert threshold not in forced.refused
        # A gap lets apply do the safe part; rendered files would claim to be the whole truth.
        assert (gap in forced.refused) == (mode == "render") and (gap in forced.unfinished) == (mode != "render")


def problem_lines(err: str) -> list[str]:
    return [line.strip() for line in err.splitlines() if line.startswith("  ")]


@pytest.mark.parametrize("case", ["rule-limit", "delete-threshold"])
def test_the_same_unsafe_plan_is_refused_identically_everywhere(
    case: str, cli_env: Emulator, tmp_path: Path, capsys: Cap
) -> None:
    settings = {"rule_limit": 4} if case == "rule-limit" else {}
    if case == "delete-threshold":
        rules = cli_env.state.servers[SQL1.lower()].rules
        for i in range(1, 12):
            rules[f"allowlist-9.0.0.{i}"] = FirewallRule(f"allowlist-9.0.0.{i}", f"9.0.0.{i}", f"9.0.0.{i}")
    block = {"name": "one", "targets": [SQL1], "subscriptions": [SUB1]}
    config = str(write_config(tmp_path / "allowlist.toml", [block], **settings))
    planned = cli(capsys, "plan", "-c", config, "--out", "plan.json")
    applied = cli(capsys, "apply", "--yes", "-c", config)
    from_file = cli(capsys, "apply", "plan.json")
    rendered = cli(capsys, "render", "-c", config, "--format", "terraform", "--out", "tf")
    expected = "would hold 5 firewall rules" if case == "rule-limit" else "Too many deletes, 100% is over 30% (11/11)"
    results = {"plan": planned, "apply": applied, "apply FILE": from_file, "render": rendered}
    for name, result in results.items():
        assert result.code == 1, (name, result.err)
        assert any(expected in line for line in problem_lines(result.err)), (name, result.err)
    assert len({tuple(problem_lines(r.err)) for r in results.values()}) == 1, "one gate, one answer"
    assert any_writes(cli_env) == [] and not Path("tf").exists()
    if case == "delete-threshold":  # --force lifts it, everywhere
        assert cli(capsys, "render", "-c", config, "--format", "terraform", "--out", "tf", "--force").code == 0
        assert cli(capsys, "apply", "--yes", "--force", "-c", config).code == 0
