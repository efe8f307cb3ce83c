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
    if not rows:
        return ""
    lines = ["| device | case | pass | fused (ms) | reference (ms) | compiled reference (ms) | fused vs reference | "
             "fused vs compiled | fused GB/s | % of copy | extra peak fused / reference / compiled (MB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (device, case, pass_), impls in sorted(rows.items()):
        if "fused" not in impls or "reference" not in impls:
            continue
        (tf, fi), (tr, ri) = impls["fused"], impls["reference"]
        tc, ci = impls.get("compiled_reference", (None, None))
        share = f"{100 * fi['gbps'] / copy[device]:.0f}%" if device in copy else "n/a"
        peaks = " / ".join(_cell(None if i is None else _mb(i["peak_extra_bytes"]), ".0f") for i in (fi, ri, ci))
        lines.append(f"| {device} | {case} {tuple(fi['shape'])} | {pass_} | {tf * 1e3:.2f} | {tr * 1e3:.2f} | "
                     f"{_cell(None if tc is None else tc * 1e3, '.2f')} | {tr / tf:.1f}x | "
                     f"{_cell(None if tc is None else tc / tf, '.2f')}x | {fi['gbps']:.1f} | {share} | {peaks} |")
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


KEEP = "fused-keep-taps"


def _cell(value, spec):
    return "n/a" if value is None else format(value, spec)


def _mb(value):
    return value / 2 ** 20


def network_tables(results) -> str:
    lines = []
    steps = _pairs(results, "train_step", lambda i: (i["device"], i["precision"], i["compiled"]))
    if steps:
        lines += ["The default fast path is `fused` (fused filter, taps recomputed in the backward); "
                  "`keep taps` is the fused filter alone, keeping the taps as the reference does.", "",
                  "| device | precision | torch.compile | fused step (s) | keep taps (s) | reference (s) | speed-up | "
                  "extra peak fused (MB) | keep taps (MB) | reference (MB) | memory saved | saved, keep taps |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for (device, precision, compiled), variants in sorted(steps.items()):
            if "fused" not in variants or "reference" not in variants:
                continue
            time = {v: t for v, (t, _) in variants.items()}
            peak = {v: _mb(info["peak_extra_bytes"]) for v, (_, info) in variants.items()}
            saved_kept = f"{100 * (1 - peak[KEEP] / peak['reference']):.1f}%" if KEEP in variants else "n/a"
            lines.append(
                f"| {device} | {precision} | {compiled} | {time['fused']:.3f} | "
                f"{_cell(time.get(KEEP), '.3f')} | {time['reference']:.3f} | "
                f"{time['reference'] / time['fused']:.2f}x | {peak['fused']:.0f} | {_cell(peak.get(KEEP), '.0f')} | "
                f"{peak['reference']:.0f} | {100 * (1 - peak['fused'] / peak['reference']):.1f}% | "
                f"{saved_kept} |")
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
        lines += ["", "| device | memory budget | variant | largest batch | per sample (MB) |", "|---|---|---|---|---|"]
        for device, variants in sorted(batches.items()):
            for variant, (_, info) in sorted(variants.items()):
                lines.append(f"| {device} | {info['budget_bytes'] / 2 ** 30:.0f} GiB | {variant} | "
                             f"{info['largest_batch']} | {_mb(info['per_sample_bytes']):.0f} |")
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
