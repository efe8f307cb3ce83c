"""Make a model that ships with dhif from a finished `dhif train` run: its weights and
configuration only (no optimizer, no random state), in float32, as
dhif/pretrained/cave_x{scale}_cpu.pt (the run's scale), and cave_x{scale}_cpu.json beside it
(the command, the data, the training time, the held-out scores and the fingerprint that the
tests check). A new scale must then be added to SHIPPED_SCALES in dhif/pretrained/__init__.py.

    python benchmarks/ship_model.py --run runs/cpu_x8 --command "dhif train ..." \
        --held-out held_out.json [--overwrite]

--held-out: a `dhif test` metrics.json of the run's last.pt on scenes it did not see.
"""
import argparse
import csv
import json
import time
from pathlib import Path

from measure import machine

from dhif.checkpoint import load_checkpoint, model_from_checkpoint
from dhif.outputs import save_atomic, write_atomic
from dhif.pretrained import fingerprint
from dhif.report import summarise

PACKAGE = Path(__file__).resolve().parents[1] / "dhif" / "pretrained"


def training_time(run: Path) -> dict:
    with open(run / "log.csv") as f:
        rows = list(csv.DictReader(f))
    return {"epochs": len(rows), "training_hours": round(sum(float(r["seconds"]) for r in rows) / 3600, 3),
            "validation_hours": round(sum(float(r.get("other_seconds") or 0) for r in rows) / 3600, 3)}


def held_out_scores(metrics: Path) -> dict:
    rows = [r for r in json.loads(metrics.read_text()) if r["scene"] != "mean"]
    means = {r["method"]: {k: round(r[k], 4) for k in ("psnr", "sam", "ergas", "ssim")} for r in summarise(rows)}
    return {"scenes": list(dict.fromkeys(r["scene"] for r in rows)), "mean": means}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--command", required=True, help="the dhif train command that made the run")
    parser.add_argument("--held-out", required=True, type=Path)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    checkpoint = load_checkpoint(args.run / "last.pt")
    target = PACKAGE / f"cave_x{checkpoint['config']['scale']}_cpu.pt"
    if target.exists() and not args.overwrite:
        raise SystemExit(f"{target} exists; pass --overwrite to replace the shipped model")
    steps = checkpoint["epoch"] * checkpoint["config"]["samples_per_epoch"] // checkpoint["config"]["batch_size"]
    weights = {k: v.float().contiguous() for k, v in checkpoint["model"].items()}
    save_atomic({"model": weights, "config": checkpoint["config"]}, target)
    info = machine()
    record = {"command": args.command, "data": "CAVE complete_ms_data (the database's original folders)",
              "train_scenes": checkpoint["config"]["train_scenes"], "steps": steps, **training_time(args.run),
              "machine": f"{info['cpu']}, {info['threads']} threads, torch {info['torch']}",
              "date": time.strftime("%Y-%m-%d", time.gmtime()), "held_out": held_out_scores(args.held_out),
              "fingerprint": fingerprint(model_from_checkpoint(target))}
    write_atomic(target.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB) and {target.with_suffix('.json')}")
