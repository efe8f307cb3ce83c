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
        if "case" in info:
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


def _pairs(results, kind, key):
    """{key(info): {impl: (median seconds, info)}} for the results of one kind."""
    rows = defaultdict(dict)
    for r in results:
        info = r.get("extra_info", {})
        if info.get("kind") == kind:
            rows[key(info)][info["impl"]] = (r["stats"]["median"], info)
    return rows


def _mb(value):
    return value / 2 ** 20


def network_tables(results) -> str:
    lines = []
    steps = _pairs(results, "train_step", lambda i: (i["device"], i["precision"], i["compiled"]))
    if steps:
        lines += ["| device | precision | torch.compile | fused step (s) | reference step (s) | speed-up | "
                  "extra peak fused (MB) | extra peak reference (MB) | memory saved |", "|---|---|---|---|---|---|---|---|---|"]
        for (device, precision, compiled), impls in sorted(steps.items()):
            if len(impls) == 2:
                (tf, fi), (tr, ri) = impls["fused"], impls["reference"]
                mf, mr = _mb(fi["peak_extra_bytes"]), _mb(ri["peak_extra_bytes"])
                lines.append(f"| {device} | {precision} | {compiled} | {tf:.3f} | {tr:.3f} | {tr / tf:.2f}x | "
                             f"{mf:.0f} | {mr:.0f} | {100 * (1 - mf / mr):.0f}% |")
    inference = _pairs(results, "inference", lambda i: (i["device"], i["tile"]))
    if inference:
        lines += ["", "| device | 512 x 512 inference | fused (s) | reference (s) | speed-up | extra peak fused (MB) | "
                  "extra peak reference (MB) |", "|---|---|---|---|---|---|---|"]
        for (device, tile), impls in sorted(inference.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
            if len(impls) == 2:
                (tf, fi), (tr, ri) = impls["fused"], impls["reference"]
                lines.append(f"| {device} | {'whole' if tile is None else f'tiles of {tile}'} | {tf:.2f} | {tr:.2f} | "
                             f"{tr / tf:.2f}x | {_mb(fi['peak_extra_bytes']):.0f} | {_mb(ri['peak_extra_bytes']):.0f} |")
    batches = _pairs(results, "largest_batch", lambda i: i["device"])
    if batches:
        lines += ["", "| device | memory budget | largest batch fused | largest batch reference | per sample fused (MB) | "
                  "per sample reference (MB) |", "|---|---|---|---|---|---|"]
        for device, impls in sorted(batches.items()):
            if len(impls) == 2:
                fi, ri = impls["fused"][1], impls["reference"][1]
                lines.append(f"| {device} | {fi['budget_bytes'] / 2 ** 30:.0f} GiB | {fi['largest_batch']} | "
                             f"{ri['largest_batch']} | {_mb(fi['per_sample_bytes']):.0f} | "
                             f"{_mb(ri['per_sample_bytes']):.0f} |")
    return "\n".join(lines)


def main(paths):
    results, machines = load(paths)
    for m in machines:
        if m:
            print(f"Machine: {m.get('gpu', m.get('cpu'))}; {m.get('cores')} cores, {m.get('threads')} torch threads; "
                  f"torch {m.get('torch')}; measured {m.get('date')}.\n")
    print(op_table(results))
    print()
    print(network_tables(results))


if __name__ == "__main__":
    main(sys.argv[1:])
