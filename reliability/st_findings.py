"""Lists the failed checks of a schemathesis run from its ndjson report: check, operation,
request and response (for RELIABILITY.md and bug reports).

    python reliability/st_findings.py reliability/runs/<run>/schemathesis/ndjson-*.ndjson
"""

from __future__ import annotations

import base64
import json
import sys
from collections import defaultdict


def main(path: str) -> None:
    by_key: dict[tuple, list[dict]] = defaultdict(list)
    for line in open(path):
        d = json.loads(line)
        ev = d.get("ScenarioFinished")
        if not ev:
            continue
        rec = ev.get("recorder", {})
        for cid, checks in rec.get("checks", {}).items():
            for c in checks:
                if c["status"] == "success":
                    continue
                inter = rec.get("interactions", {}).get(cid, {})
                req, resp = inter.get("request", {}), inter.get("response") or {}
                body = resp.get("content", {}).get("$base64")
                text = base64.b64decode(body).decode("utf-8", "replace") if body else ""
                op = ev.get("label") or f"{req.get('method')} {req.get('uri')}"
                by_key[(c["name"], op)].append({
                    "request": f"{req.get('method')} {req.get('uri')}",
                    "body": (req.get("body") or {}).get("$base64") and base64.b64decode(req["body"]["$base64"]).decode("utf-8", "replace")[:300],
                    "status": resp.get("status_code"), "response": text[:300],
                    "message": (c.get("failure_info") or {}).get("failure", {}).get("title") if isinstance(c.get("failure_info"), dict) else None,
                })
    print(f"{sum(len(v) for v in by_key.values())} failed checks in {len(by_key)} (check, operation) groups")
    for (check, op), items in sorted(by_key.items()):
        first = items[0]
        print(f"\n## {check} | {op} | {len(items)}x")
        print(json.dumps(first, indent=1)[:1200])


if __name__ == "__main__":
    main(sys.argv[1])
