"""Prints a run's results (results.jsonl + junit.xml) as Markdown for RELIABILITY.md.

    python reliability/summarize.py reliability/runs/latest-full
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main(run: Path) -> None:
    junit = run / "junit.xml"
    if junit.exists():
        print("| test | outcome | seconds |\n|---|---|---|")
        for case in ET.parse(junit).getroot().iter("testcase"):
            outcome = "passed"
            for tag in ("failure", "error", "skipped"):
                el = case.find(tag)
                if el is not None:
                    outcome = f"{tag.upper()}: {(el.get('message') or '').splitlines()[0][:160]}"
            print(f"| {case.get('classname')}.{case.get('name')} | {outcome} | {float(case.get('time', 0)):.0f} |")
        print()
    results = run / "results.jsonl"
    if results.exists():
        for line in results.read_text().splitlines():
            r = json.loads(line)
            name, at = r.pop("test"), r.pop("at")
            print(f"- **{name}** ({at}): " + ", ".join(f"{k}={json.dumps(v)}" for k, v in r.items()))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "reliability/runs/latest-quick"))
