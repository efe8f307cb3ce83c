"""The learning curves of `dhif demo`'s two networks on its held-out scene: the small DHIF-Net
trained from nothing and the shipped x8 model fine-tuned on the same data (dhif.demo's own
functions and seeds), PSNR every `--every` steps, beside the shipped model as trained (from
its own start, component substitution, and from the demo's) and the best classical method.
Each network is one seeded run, resumed from its last.pt at each point (the same steps as one
run: constant learning rate, samples drawn from (seed, epoch, index)).

    python benchmarks/demo_learning_curves.py [--cave DIR] [--steps 3200] [--every 400] [--json F]
"""
import argparse
import dataclasses
import json
import tempfile
from functools import partial
from pathlib import Path

import torch

from measure import machine

from dhif.baselines import BASELINES
from dhif.data import CAVE_WAVELENGTHS, PatchDataset, SceneDataset, spectral_response
from dhif.demo import RUNS, best_start, demo_config, demo_scenes, fine_tune_shipped
from dhif.evaluate import evaluate
from dhif.models import initial_estimate
from dhif.pretrained import pretrained_model
from dhif.report import METHOD_NAMES
from dhif.training import train


def held_out_psnr(models: dict, test_set, baselines=()) -> dict:
    return {row["method"]: row["psnr"] for row in evaluate(models, test_set, "cpu", progress=False,
                                                            baselines=baselines)}


def curves(cave, steps: int, every: int, out: Path) -> dict:
    train_cubes, test_cubes = demo_scenes(cave, seed=0)
    srf = spectral_response("nikon_d700")
    start, _ = best_start(train_cubes, srf, demo_config(out, every, "cpu", 0))
    test_set = SceneDataset(test_cubes, 8, srf, 2.0, wavelengths=CAVE_WAVELENGTHS)
    shipped = pretrained_model(8)
    from_demo_start = pretrained_model(8)
    from_demo_start.config = dataclasses.replace(from_demo_start.config, initial_estimate=start)
    reference = held_out_psnr({"shipped": shipped, "shipped_from_demo_start": from_demo_start},
                              test_set, tuple(BASELINES))
    strongest = max(BASELINES, key=reference.get)
    points = {"dhif": {}, "fine_tuned": {}}
    dataset = None
    for budget in range(every, steps + 1, every):
        config = demo_config(out / RUNS[0], budget, "cpu", 0, start)
        dataset = dataset or PatchDataset(train_cubes, config.scale, srf, config.patch, config.samples_per_epoch,
                                          config.sigma, config.seed, start=partial(initial_estimate, config))
        models = {"dhif": train(config, dataset, srf=srf, progress=False).model,
                  "fine_tuned": fine_tune_shipped(config, dataset, srf, out / RUNS[1], progress=False)}
        for network, value in held_out_psnr(models, test_set).items():
            points[network][budget] = value
        print(f"{budget} steps: " + ", ".join(f"{METHOD_NAMES[k]} {v[budget]:.2f} dB" for k, v in points.items()),
              flush=True)
    return {"scene": next(iter(test_cubes)), "start": start, "reference": reference, "strongest": strongest,
            "curves": points}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cave", help="a CAVE folder: the demo's --cave scene instead of the synthetic one")
    parser.add_argument("--steps", type=int, default=3200)
    parser.add_argument("--every", type=int, default=400)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as out:
        result = curves(args.cave, args.steps, args.every, Path(out))
    reference, strongest = result["reference"], result["strongest"]
    print(f"\n{result['scene']}, x8 ({machine()['cpu']}, {machine()['date']}); the networks start from "
          f"{METHOD_NAMES[result['start']]}; {METHOD_NAMES[strongest]} (best classical) {reference[strongest]:.2f} dB, "
          f"component substitution {reference['cs']:.2f}; the shipped model as trained "
          f"{reference['shipped']:.2f} (from the demo's start: {reference['shipped_from_demo_start']:.2f})")
    budgets = list(result["curves"]["dhif"])
    print("| steps | " + " | ".join(str(b) for b in budgets) + " |")
    print("|---" * (len(budgets) + 1) + "|")
    for network, points in result["curves"].items():
        print(f"| {METHOD_NAMES[network]} | " + " | ".join(f"{points[b]:.2f}" for b in budgets) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), **result}, f, indent=1)


if __name__ == "__main__":
    main()
