"""`allowlist audit` output: text, JSON, Markdown and SARIF 2.1.0 (for GitHub code scanning)."""

from __future__ import annotations

import json
from typing import Any

from allowlist import __version__
from allowlist.audit import CHECKS, Audit, AuditFinding, Severity

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SARIF_LEVEL = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning", Severity.LOW: "note"}
# GitHub ranks security alerts by this number (critical > 9.0, high 7.0-8.9, medium 4.0-6.9, low < 4.0).
SECURITY_SEVERITY = {Severity.CRITICAL: "9.5", Severity.HIGH: "8.0", Severity.MEDIUM: "5.0", Severity.LOW: "2.0"}


def render_audit(result: Audit, fmt: str, incomplete: tuple[str, ...] = (), artifact: str = "allowlist.toml") -> str:
    if fmt == "json":
        return _json(result, incomplete)
    if fmt == "markdown":
        return _markdown(result, incomplete)
    if fmt == "sarif":
        return _sarif(result, incomplete, artifact)
    return _text(result, incomplete)


def summary(result: Audit) -> str:
    counts = {s: sum(1 for f in result.findings if f.severity == s) for s in reversed(Severity)}
    shown = ", ".join(f"{n} {s.label}" for s, n in counts.items() if n) or "no findings"
    return f"Audited {result.resources} firewall(s) against {result.apps} app(s): {shown}."


def _where(f: AuditFinding) -> str:
    return f"{f.target.name} ({f.target.kind})"


def _text(result: Audit, incomplete: tuple[str, ...]) -> str:
    lines = []
    for f in result.findings:
        lines += [f"{f.severity.label.upper():8} {f.check.id} {_where(f)}: {f.message}",
                  f"         why: {f.check.why}", f"         fix: {f.fix}", f"         {f.target.id}", ""]  # fmt: skip
    lines += [f"Incomplete: {reason}" for reason in incomplete]
    lines.append(summary(result))
    return "\n".join(lines) + "\n"


def _markdown(result: Audit, incomplete: tuple[str, ...]) -> str:
    lines = ["## allowlist audit", "", summary(result), ""]
    if result.findings:
        lines += ["| severity | check | firewall | finding | fix |", "|---|---|---|---|---|"]
        for f in result.findings:
            cells = [f.severity.label, f"{f.check.id} {f.check.title}", f"`{f.target.name}`", f.message, f.fix]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")
    lines += [f"> Incomplete: {reason}" for reason in incomplete]
    return "\n".join(lines).rstrip("\n") + "\n"


def _json(result: Audit, incomplete: tuple[str, ...]) -> str:
    data = {
        "format": "allowlist-audit",
        "version": 1,
        "resources": result.resources,
        "apps": result.apps,
        "incomplete": list(incomplete),
        "findings": [
            {
                "id": f.check.id,
                "severity": f.severity.label,
                "title": f.check.title,
                "target": f.target.id,
                "kind": f.target.kind,
                "rule": f.rule,
                "message": f.message,
                "why": f.check.why,
                "fix": f.fix,
                "fingerprint": f.fingerprint,
            }
            for f in result.findings
        ],
    }
    return json.dumps(data, indent=2) + "\n"


def _sarif(result: Audit, incomplete: tuple[str, ...], artifact: str) -> str:
    rules = [
        {"id": c.id, "name": "".join(w.capitalize() for w in c.title.replace("/", " ").split() if w.isalnum()),
         "shortDescription": {"text": c.title}, "fullDescription": {"text": c.why},
         "help": {"text": f"{c.title}: {c.why}."}, "defaultConfiguration": {"level": SARIF_LEVEL[c.severity]},
         "properties": {"security-severity": SECURITY_SEVERITY[c.severity], "tags": ["security", "azure", "firewall"]}}
        for c in CHECKS.values()
    ]  # fmt: skip
    index = {c: i for i, c in enumerate(CHECKS)}
    results: list[dict[str, Any]] = [
        {
            "ruleId": f.check.id,
            "ruleIndex": index[f.check.id],
            "level": SARIF_LEVEL[f.severity],
            "message": {"text": f"{_where(f)}: {f.message}. Fix: {f.fix}."},
            # Findings are about Azure resources: the config that scopes them is the file code scanning shows.
            "locations": [{
                "physicalLocation": {"artifactLocation": {"uri": artifact}, "region": {"startLine": 1}},
                "logicalLocations": [{"fullyQualifiedName": f.target.id + (f"/{f.rule}" if f.rule else ""),
                                      "kind": "resource"}],
            }],
            "partialFingerprints": {"allowlistFinding/v1": f.fingerprint},
        }
        for f in result.findings
    ]  # fmt: skip
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "allowlist", "version": __version__, "semanticVersion": __version__,
                            "rules": rules}},
        "results": results,
        "invocations": [{"executionSuccessful": not incomplete,
                         "toolExecutionNotifications": [{"level": "warning", "message": {"text": r}}
                                                        for r in incomplete]}],
    }  # fmt: skip
    return json.dumps({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2) + "\n"
