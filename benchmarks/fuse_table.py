"""`dhif fuse` with its defaults on every pair that the real data here make, DHIF-Net beside
every baseline at reduced resolution (Wald's protocol, what `dhif fuse` reports) and, where a
truth exists, against it at full resolution:

- Houston x4: the real 48-band HSI and the real RGB image (no truth);
- Paris x2: the Hyperion cube averaged 2 x 2 into an LR-HSI, with the real 9-band ALI image
  (truth: the Hyperion cube);
- Jasper Ridge x2: 198 bands degraded by the protocol, with a 4-channel image of band
  averages as the MSI (truth: the cube);
- CAVE x4: a scene degraded by the protocol, with the Nikon D700 RGB image (truth: the
  scene); CAVE x8 the same with --pretrained (at x8 a 512 x 512 scene's LR-HSI, 64 pixels,
  is too small to train on at reduced resolution).

    python benchmarks/fuse_table.py [--data DIR] [--scene watercolors] [--json fuse_table.json]
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from measure import machine

from dhif.baselines import BASELINES
from dhif.cli import main as dhif_main
from dhif.data import degrade, read_array, read_cave_scene, read_cube, spectral_response, to_msi
from dhif.report import METHOD_NAMES

from helpers import SHARED_DATA  # noqa: E402  (measure puts tests/ on the path)


def real_pairs(data: Path, scene: str) -> dict:
    """{name: (LR-HSI, HR-MSI, scale, truth or None, extra dhif fuse arguments)}, (C, H, W)."""
    houston, paris = data / "houston" / "houston_dataset.mat", data / "paris" / "paris_data_hs_ms.mat"
    pairs = {"Houston x4 (real pair)": (read_cube(houston, "hyprImg"), read_cube(houston, "rgbImg"), 4, None, [])}
    hyperion = read_cube(paris, "HSim").double()
    pairs["Paris x2 (Hyperion averaged 2 x 2, real ALI)"] = (F.avg_pool2d(hyperion[None], 2)[0],
                                                             read_cube(paris, "MSim").double(), 2, hyperion, [])
    pixels = read_array(data / "jasper_ridge" / "jasperRidge2_R198.mat", "Y").astype(np.float64)
    jasper = torch.from_numpy(pixels.reshape(198, 100, 100).transpose(0, 2, 1)[:, :96, :96].copy())  # column-major
    pairs["Jasper Ridge x2 (simulated 4-band MSI)"] = (degrade(jasper, 2), torch.stack(
        [bands.mean(dim=0) for bands in jasper.tensor_split(4)]), 2, jasper, [])
    cave = read_cave_scene(data / "cave" / "complete_ms_data" / f"{scene}_ms").double()
    rgb = to_msi(cave, spectral_response("nikon_d700"))
    pairs[f"CAVE {scene} x4 (simulated)"] = (degrade(cave, 4), rgb, 4, cave, [])
    pairs[f"CAVE {scene} x4 (simulated, PSF sigma 1 over 7 x 7)"] = (degrade(cave, 4, 1.0, window=7), rgb, 4, cave, [])
    pairs[f"CAVE {scene} x8 (simulated, --pretrained)"] = (degrade(cave, 8), rgb, 8, cave, ["--pretrained"])
    return pairs


def fuse_pair(lr, msi, scale: int, truth, extra: list, folder: Path) -> dict:
    np.save(folder / "lr.npy", lr.float().numpy())
    np.save(folder / "msi.npy", msi.float().numpy())
    if truth is not None:
        np.save(folder / "truth.npy", truth.float().numpy())
        extra = [*extra, "--truth", str(folder / "truth.npy")]
    out = folder / "out"
    started = time.time()
    assert dhif_main(["fuse", "--lr-hsi", str(folder / "lr.npy"), "--hr-msi", str(folder / "msi.npy"),
                      "--lr-layout", "chw", "--msi-layout", "chw", "--baselines", "all", "--save-baselines",
                      "--device", "cpu", "--out", str(out), *extra]) == 0
    report = json.loads((out / "report.json").read_text())
    methods = ("dhif", *BASELINES)
    result = {"seconds": round(time.time() - started, 1), "model": report["model"],
              "observation": report["observation"], "reduced": {m: report["reduced_resolution"][m] for m in methods},
              "quality": {m: report["full_resolution"][m] for m in methods}}
    if truth is not None:
        result["full"] = {m: {k: round(report["truth"][m][k], 4) for k in ("psnr", "sam", "ergas", "ssim")}
                          for m in methods}
    return result


def table(results: dict) -> str:
    methods = ("dhif", *BASELINES)
    lines = ["| pair | | " + " | ".join(METHOD_NAMES[m] for m in methods) + " |", "|---|---|" + "---|" * len(methods)]
    for pair, r in results.items():
        best = max(methods, key=lambda m: r["reduced"][m]["psnr"])
        lines.append(f"| {pair} | reduced resolution, PSNR dB | " + " | ".join(
            f"**{r['reduced'][m]['psnr']:.2f}**" if m == best else f"{r['reduced'][m]['psnr']:.2f}" for m in methods)
            + " |")
        if "full" in r:
            best = max(methods, key=lambda m: r["full"][m]["psnr"])
            lines.append("| | against the truth, PSNR dB / SAM deg | " + " | ".join(
                (f"**{r['full'][m]['psnr']:.2f}**" if m == best else f"{r['full'][m]['psnr']:.2f}")
                + f" / {r['full'][m]['sam']:.2f}" for m in methods) + " |")
        best = max(methods, key=lambda m: r["quality"][m]["hqnr"])
        lines.append("| | full resolution, QNR / HQNR | " + " | ".join(
            f"{r['quality'][m]['qnr']:.3f} / " + (f"**{r['quality'][m]['hqnr']:.3f}**" if m == best else
                                                 f"{r['quality'][m]['hqnr']:.3f}") for m in methods) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="the folder of the real data (DHIF_DATA)")
    parser.add_argument("--scene", default="watercolors", help="the CAVE scene simulated at x4 and x8")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", nargs="+", metavar="TEXT", help="only the pairs whose names hold one of these; "
                        "with --json, their results replace those in the file (each with its machine and date)")
    args = parser.parse_args()
    kept = json.loads(args.json.read_text()) if args.only and args.json and args.json.exists() else None
    results = dict(kept["results"]) if kept else {}
    for name, (lr, msi, scale, truth, extra) in real_pairs(args.data, args.scene).items():
        if args.only and not any(text in name for text in args.only):
            continue
        with tempfile.TemporaryDirectory() as folder:
            results[name] = fuse_pair(lr, msi, scale, truth, extra, Path(folder))
        if kept:
            results[name]["machine"] = machine()
        print(f"{name}: {json.dumps(results[name]['reduced']['dhif'])}", flush=True)
    print(f"\n{kept['machine'] if kept else machine()}\n\n{table(results)}")
    if args.json:
        args.json.write_text(json.dumps({"machine": kept["machine"] if kept else machine(), "results": results},
                                        indent=2))


if __name__ == "__main__":
    main()
