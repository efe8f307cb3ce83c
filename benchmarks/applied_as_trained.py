"""What reduced resolution says of a model applied as trained: `dhif fuse --pretrained` on
CAVE scenes that the shipped models never saw, simulated at each shipped scale with the
protocol's PSF, every method scored at reduced resolution (Wald's protocol, what `dhif fuse`
ranks by without a truth) and against the truth (--truth).

    python benchmarks/applied_as_trained.py [--scales 4 8 16] [--json applied_as_trained.json]
"""
import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path

import numpy as np

from measure import machine

from dhif.cli import main as dhif_main
from dhif.data import degrade, read_cave_scene, spectral_response, to_msi
from dhif.pretrained import SHIPPED_SCALES, pretrained_record
from dhif.report import METHOD_NAMES

from helpers import CAVE_DIR  # noqa: E402  (measure puts tests/ on the path)

COMPARED = ("cs", "cnmf", "hysure")  # component substitution and the two strongest others on CAVE


def fused_scores(cube, scale: int, folder: Path) -> dict:
    """{"reduced": {method: PSNR}, "truth": {method: PSNR}} of one `dhif fuse --pretrained`."""
    files = {"lr": degrade(cube, scale), "msi": to_msi(cube, spectral_response("nikon_d700")), "truth": cube}
    for name, array in files.items():
        np.save(folder / f"{name}.npy", array.float().numpy())
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = dhif_main(["fuse", "--lr-hsi", str(folder / "lr.npy"), "--hr-msi", str(folder / "msi.npy"),
                          "--truth", str(folder / "truth.npy"), "--lr-layout", "chw", "--msi-layout", "chw",
                          "--pretrained", "--device", "cpu", "--baselines", *COMPARED, "--out", str(folder / "out")])
    if code:
        raise RuntimeError(f"dhif fuse exited with {code} at x{scale}")
    report = json.loads((folder / "out" / "report.json").read_text())
    return {kind: {m: v["psnr"] for m, v in report[key].items() if isinstance(v, dict)}
            for kind, key in (("reduced", "reduced_resolution"), ("truth", "truth"))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=int, nargs="+", default=list(SHIPPED_SCALES))
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    if not CAVE_DIR.is_dir():
        raise SystemExit(f"no CAVE data at {CAVE_DIR} (DHIF_DATA names the folder that holds cave/)")
    rows = []
    for scale in args.scales:
        for scene in pretrained_record(scale)["held_out"]["scenes"]:
            cube = read_cave_scene(CAVE_DIR / f"{scene}_ms").double()
            with tempfile.TemporaryDirectory() as folder:
                rows.append({"scale": scale, "scene": scene, **fused_scores(cube, scale, Path(folder))})
            print(f"x{scale} {scene}: done", flush=True)
    methods = ("dhif", *COMPARED)
    print(f"\ndhif fuse --pretrained, PSNR dB, reduced resolution / against the truth ({machine()['cpu']}, "
          f"{machine()['date']})")
    print("| scale | scene | " + " | ".join(METHOD_NAMES[m] for m in methods) + " |")
    print("|---" * (len(methods) + 2) + "|")
    for row in rows:
        print(f"| x{row['scale']} | {row['scene']} | "
              + " | ".join(f"{row['reduced'][m]:.2f} / {row['truth'][m]:.2f}" for m in methods) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
