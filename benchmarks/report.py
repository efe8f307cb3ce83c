"""Markdown tables from pytest-benchmark JSON files: fused against reference per device,
case and pass, with bandwidth and extra peak memory.

    python benchmarks/report.py bench.json [more.json ...]
"""
import json
import sys
from collections import defaultdict


def load(paths):
    results, machines = [], []
    for path in paths:
        data = json.load(open(path))
        machines.append(data.get("machine_info", {}).get("dhif", {}))
        results += data["benchmarks"]
    return results, machines


def op_table(results) -> str:
    copy = {r["extra_info"]["device"]: r["extra_info"]["gbps"] for r in results if r["name"].startswith("test_copy")}
    rows = defaultdict(dict)
    for r in results:
        info = r.get("extra_info", {})
        if "impl" in info:
            rows[(info["device"], info["case"], info["pass_"])][info["impl"]] = (r["stats"]["median"], info)
    lines = ["| device | case | pass | fused (ms) | reference (ms) | speed-up | fused GB/s | % of copy | "
             "extra peak fused (MB) | extra peak reference (MB) | memory ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (device, case, pass_), impls in sorted(rows.items()):
        if "fused" not in impls or "reference" not in impls:
            continue
        (tf, fi), (tr, ri) = impls["fused"], impls["reference"]
        share = f"{100 * fi['gbps'] / copy[device]:.0f}%" if device in copy else "n/a"
        mf, mr = fi["peak_extra_bytes"] / 2 ** 20, ri["peak_extra_bytes"] / 2 ** 20
        lines.append(f"| {device} | {case} {tuple(fi['shape'])} | {pass_} | {tf * 1e3:.2f} | {tr * 1e3:.2f} | "
                     f"{tr / tf:.1f}x | {fi['gbps']:.1f} | {share} | {mf:.0f} | {mr:.0f} | "
                     f"{mr / max(mf, 1e-9):.1f}x |")
    for device, gbps in copy.items():
        lines.append(f"\nCopy bandwidth on {device} (400 MB tensor copy, read + write): {gbps:.1f} GB/s.")
    return "\n".join(lines)


def main(paths):
    results, machines = load(paths)
    for m in machines:
        if m:
            print(f"Machine: {m.get('gpu', m.get('cpu'))}; {m.get('cores')} cores, {m.get('threads')} torch threads; "
                  f"torch {m.get('torch')}; measured {m.get('date')}.\n")
    print(op_table(results))


if __name__ == "__main__":
    main(sys.argv[1:])
