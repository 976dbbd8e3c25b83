"""Python-side cost of `Engine.execute`: mock provider with zero latency, in-memory store unless
`--url` names another (`sqlite:///path`, `postgres://...`; `--durability strict|relaxed`).

    FORMAOPS_PY_RELEASE=1 formaops-py/scripts/test.sh -q   # builds --release into target/py-venv
    target/py-venv/bin/python formaops-py/bench/bench_execute.py [--iterations N] [--url URL]

Times each call with perf_counter_ns after a warm-up and prints p50/p90/p99/mean per call for
`Engine.execute` (what users call: native call + dataclass results), the native method alone
(`engine._native.execute`, dicts), and `render` (no queue, no provider) for scale. Compare
with the Rust figure of the same call: `cargo bench -p formaops-py --bench execute_overhead`.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from typing import Callable, Dict, List

import formaops


def measure(fn: Callable[[], object], iterations: int, warmup: int) -> Dict[str, float]:
    for _ in range(warmup):
        fn()
    samples: List[int] = []
    gc.disable()
    try:
        for _ in range(iterations):
            start = time.perf_counter_ns()
            fn()
            samples.append(time.perf_counter_ns() - start)
    finally:
        gc.enable()
    samples.sort()

    def pct(q: float) -> float:
        return samples[min(len(samples) - 1, int(q * len(samples)))] / 1000.0

    return {
        "p50_us": pct(0.50),
        "p90_us": pct(0.90),
        "p99_us": pct(0.99),
        "mean_us": statistics.fmean(samples) / 1000.0,
        "iterations": float(iterations),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--url", default="memory://", help="store URL (default memory://)")
    parser.add_argument("--durability", default="strict", choices=["strict", "relaxed"])
    args = parser.parse_args()

    with formaops.Engine.open(
        args.url, provider="mock", mock_latency_ms=0, durability=args.durability
    ) as engine:
        p = engine.create_prompt(
            name="bench",
            template="Summarise {{ text }}",
            variables=[{"name": "text", "type": "string", "required": True}],
        )
        inputs = {"text": "a short benchmark input"}
        results = {
            "execute": measure(lambda: engine.execute(p.id, inputs), args.iterations, args.warmup),
            "native_execute": measure(lambda: engine._native.execute(p.id, inputs), args.iterations, args.warmup),
            "render": measure(lambda: engine.render(p.id, inputs), args.iterations, args.warmup),
        }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'call':<16}{'p50 µs':>10}{'p90 µs':>10}{'p99 µs':>10}{'mean µs':>10}")
    for name, r in results.items():
        print(f"{name:<16}{r['p50_us']:>10.1f}{r['p90_us']:>10.1f}{r['p99_us']:>10.1f}{r['mean_us']:>10.1f}")


if __name__ == "__main__":
    main()
