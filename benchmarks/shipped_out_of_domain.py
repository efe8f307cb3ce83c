"""Where the shipped x8 model's one stage helps and where it harms: on the demo's held-out
synthetic scene and on the CAVE scenes it was scored on (where ../shared/data has them), its
start (component substitution), the model, the model with its data terms alone (lambda 0) and
with its filter prior alone (R's and B's adjoints zero), and the cosine between what the model
changes and the start's error (1: it moves straight at the truth; 0: its change is unrelated to
the error).

    python benchmarks/shipped_out_of_domain.py [--json shipped_out_of_domain.json]
"""
import argparse
import copy
import json

import torch

from measure import machine

from dhif.data import degrade, load_scenes, spectral_response, to_msi
from dhif.demo import demo_scenes
from dhif.metrics import psnr
from dhif.pretrained import pretrained_model, pretrained_record

from helpers import CAVE_DIR  # noqa: E402  (measure puts tests/ on the path)


def variants(model) -> dict:
    """{name: model}: the model, and copies with one of its two kinds of terms switched off."""
    data_only, prior_only = copy.deepcopy(model), copy.deepcopy(model)
    with torch.no_grad():
        data_only.lam.zero_()
        for adjoint in (prior_only.spectral_up, prior_only.spatial_up):
            last = [m for m in adjoint if hasattr(m, "weight")][-1]
            last.weight.zero_()
            last.bias.zero_()
    return {"shipped": model, "data terms alone": data_only, "filter prior alone": prior_only}


@torch.no_grad()
def scene_row(models: dict, cube: torch.Tensor, srf: torch.Tensor) -> dict:
    hr = cube[None]
    lr, msi = degrade(hr, 8), to_msi(hr, srf)
    start = models["shipped"].initial_estimate(lr, msi)
    row = {"component substitution": psnr(start.clamp(0, 1), hr)}
    for name, model in models.items():
        row[name] = psnr(model(lr, msi, start).clamp(0, 1), hr)
    change, error = models["shipped"](lr, msi, start) - start, hr - start
    row["cosine(change, error)"] = torch.nn.functional.cosine_similarity(change.flatten(), error.flatten(), 0).item()
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    torch.manual_seed(0)
    srf = spectral_response("nikon_d700")
    models = variants(pretrained_model(8))
    scenes = {f"demo's {name} (held out)": cube for name, cube in demo_scenes(None, seed=0)[1].items()}
    if CAVE_DIR.is_dir():
        held_out = pretrained_record(8)["held_out"]["scenes"]
        scenes.update(load_scenes(CAVE_DIR, held_out, scaling="as-read").cubes)
    rows = {name: scene_row(models, cube, srf) for name, cube in scenes.items()}
    columns = list(next(iter(rows.values())))
    print(f"shipped x8 model, PSNR dB ({machine()['cpu']}, {machine()['date']})")
    print("| scene | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{v:.3f}" if "cosine" in k else f"{v:.2f}" for k, v in row.items()) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
