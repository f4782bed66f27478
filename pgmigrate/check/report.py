"""What ``check`` found, and its two forms: text (one line per finding) and JSON.

Text: ``FILE:LINE: severity: rule: message`` (drift has no file line: ``live:DBNAME: ...``).
JSON: ``{"findings": [{"rule", "severity", "version", "file", "line", "message", "table"}],
"summary": {...}}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from .rules import ERROR, INFO, WARNING, Finding


class Report:
    """The findings in the order they were found, and what the check covered."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.migrations = 0  # in the folder
        self.checked = 0  # whose up file ran on the shadow database
        self.shadow = ""  # where the shadow database was: host and port
        self.against: str | None = None  # the live database, described without its password
        self.live_version: int | None = None
        self.seconds = 0.0

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def failed(self) -> bool:
        return any(f.severity == ERROR for f in self.findings)

    def summary(self) -> dict[str, object]:
        return {
            "errors": self.count(ERROR), "warnings": self.count(WARNING), "info": self.count(INFO),
            "migrations": self.migrations, "checked": self.checked, "shadow": self.shadow,
            "against": self.against, "live_version": self.live_version, "seconds": round(self.seconds, 2),
        }


def text_lines(report: Report, paint: Callable[[str, str], str] = lambda text, _colour: text) -> list[str]:
    """One line per finding; ``paint(text, colour)`` colours the severity."""
    colour = {ERROR: "red", WARNING: "yellow", INFO: "dim"}
    lines = []
    for f in report.findings:
        where = f.file if f.line is None else f"{f.file}:{f.line}"
        lines.append(f"{where}: {paint(f.severity, colour[f.severity])}: {f.rule}: {f.message}")
    return lines


def summary_line(report: Report) -> str:
    s = report.summary()
    text = (f"checked {s['checked']} of {s['migrations']} migration(s) on a shadow database ({report.shadow}) "
            f"in {report.seconds:.1f} s: {s['errors']} error(s), {s['warnings']} warning(s), {s['info']} info")
    if report.against:
        text += f"; live database at version {report.live_version} ({report.against})"
    return text


def as_json(report: Report) -> str:
    return json.dumps({"findings": [f.as_dict() for f in report.findings], "summary": report.summary()}, indent=2)
