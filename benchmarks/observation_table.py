"""The classical methods on the real pairs with the assumed observation (Gaussian PSF of
sigma 2 over scale x scale, the authors') and with the one `dhif fuse` estimates from the
pair (dhif.baselines.estimation): every baseline at reduced resolution (Wald's protocol,
each with its own observation's degradation) and at full resolution (the QNR family, the
consistency with both inputs and, where a truth exists, PSNR against it). DHIF-Net's rows,
which need training, are benchmarks/fuse_table.py's.

    python benchmarks/observation_table.py [--data DIR] [--json observation_table.json]
"""
import argparse
import json
from pathlib import Path

import torch

from fuse_table import real_pairs
from measure import machine

from dhif.baselines import BASELINES, Observation, estimate_srf
from dhif.baselines.estimation import estimate_observation
from dhif.data.nodata import empty_region, pair_valid
from dhif.data.units import robust_peak
from dhif.fuse.scores import full_resolution_baselines, reduced_resolution
from dhif.metrics import psnr_over_valid
from dhif.quality import full_resolution_quality
from dhif.report import METHOD_NAMES

from helpers import SHARED_DATA  # noqa: E402  (measure puts tests/ on the path)

PAIRS = ("Houston", "Paris", "Jasper")


def peak(cube) -> float:
    return robust_peak(cube.reshape(cube.shape[0], -1))


def compare(lr, msi, scale: int, truth) -> dict:
    """{assumed | estimated: {observation, reduced: {method: psnr}, full: {method: scores}}}."""
    lr_peak = peak(lr)  # the units dhif fuse works in: each input over its robust peak
    lr, msi = (lr.double() / lr_peak).float(), (msi.double() / peak(msi)).float()
    region = empty_region(msi, lr, scale)[0]
    lr_valid = None if region is None else pair_valid(None, ~region, scale, tuple(lr.shape[1:]),
                                                     tuple(msi.shape[1:]))[0]
    estimated = estimate_observation(lr, msi, scale, lr_valid)
    results = {}
    for name, observation in (("assumed", Observation(scale, 2.0, blur_known=False)),
                              ("estimated", estimated.observation())):
        srf = estimate_srf(lr[None], observation.degrade(msi[None]))[0]  # the baselines' own, for this PSF
        reduced = reduced_resolution(None, lr, msi, observation, "cpu", None, 0, baselines=tuple(BASELINES),
                                     lr_valid=lr_valid)
        cubes, _ = full_resolution_baselines(lr, msi, observation, "cpu", tuple(BASELINES))
        full = {}
        for method, cube in cubes.items():
            full[method] = full_resolution_quality(cube, lr, msi, observation, srf, None, lr_valid)
            if truth is not None:
                full[method]["psnr_truth"] = psnr_over_valid(cube[None].double(), truth[None].double() / lr_peak)
        side = observation.window or scale
        results[name] = {"psf": f"sigma {observation.sigma:.3g} over {side} x {side}",
                         "fit_residual": estimated.residual if name == "estimated" else estimated.assumed_residual,
                         "reduced": {m: s["psnr"] for m, s in reduced.items()}, "full": full}
    return results


def table(results: dict) -> str:
    methods = tuple(BASELINES)
    lines = ["| pair | observation | score | " + " | ".join(METHOD_NAMES[m] for m in methods) + " |",
             "|---|---|---|" + "---|" * len(methods)]
    for pair, by_observation in results.items():
        for name, r in by_observation.items():
            label = f"{name}: {r['psf']} (fit residual {100 * r['fit_residual']:.2f}%)"
            rows = [("reduced resolution, PSNR dB", lambda m: f"{r['reduced'][m]:.2f}"),
                    ("full resolution, QNR / HQNR", lambda m: f"{r['full'][m]['qnr']:.3f} / {r['full'][m]['hqnr']:.3f}"),
                    ("full resolution, consistency LR / MSI dB", lambda m: f"{r['full'][m]['lr_consistency_psnr']:.1f}"
                     f" / {r['full'][m]['msi_consistency_psnr']:.1f}")]
            if "psnr_truth" in r["full"][methods[0]]:
                rows.append(("against the truth, PSNR dB", lambda m: f"{r['full'][m]['psnr_truth']:.2f}"))
            for index, (score, cell) in enumerate(rows):
                lines.append(f"| {pair if name == 'assumed' and not index else ''} | {label if not index else ''} | "
                             f"{score} | " + " | ".join(cell(m) for m in methods) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="the folder of the real data (DHIF_DATA)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    results = {}
    for name, (lr, msi, scale, truth, _) in real_pairs(args.data, "watercolors").items():
        if name.startswith(PAIRS):
            results[name] = compare(lr, msi, scale, truth)
            print(f"{name}: done", flush=True)
    print(f"\n{machine()}\n\n{table(results)}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
