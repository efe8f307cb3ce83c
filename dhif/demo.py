"""`dhif demo`: the whole pipeline in a few minutes on a CPU, with no dataset needed.

Simulates the x8 LR-HSI and the RGB image of a scene (synthetic, or a real CAVE scene with
--cave), trains a small DHIF-Net from nothing and fine-tunes the model that ships with dhif,
each for a fixed, seeded number of steps (so that it prints the same numbers on any
machine), evaluates both on held-out data beside every classical method, and writes PNG
figures.
"""
import dataclasses
import time
from functools import partial
from pathlib import Path

from .baselines import BASELINES
from .data import (CAVE_WAVELENGTHS, PatchDataset, SceneDataset, crop_to_multiple, degrade,
                   find_scenes, read_cave_scene, spectral_response, to_msi)
from .data.synthetic import synthetic_scene
from .evaluate import evaluate
from .checkpoint import load_checkpoint
from .metrics import psnr
from .models import initial_estimate
from .models.config import ModelConfig
from .pretrained import pretrained_path, pretrained_record
from .outputs import claim_output
from .report import METHOD_NAMES, format_table
from .devices import pick_device
from .training import FINE_TUNE_LR, SHORT_RUN_STEPS_PER_EPOCH, TrainConfig, short_run_config, train

HELD_OUT_ROWS = 128  # of a real scene, kept out of training for the evaluation
# The CAVE scene of `dhif demo --cave`: in the paper's test split, so that no shipped model
# learnt from it and the shipped model's row is a held-out score too.
CAVE_DEMO_SCENE = "watercolors"
# Each network's: 5 minutes for both on a quiet 2-core AVX-512 CPU (0.064 s a step), 10 on an AVX2 one.
DEFAULT_STEPS = 2400
# What the demo writes in its --out folder (and replaces with --overwrite): the two training
# runs, then the results.
RUNS = ("run", "fine_tune")
RESULTS = ("metrics.csv", "metrics.json", "figures")
NETWORKS = ("dhif", "fine_tuned")  # after the classical methods in the summary line
WHOLE_SCENE_STARTS = ("cs", "cnmf")  # the network's starts that best_start chooses from


def demo_scenes(cave, seed: int):
    """(training cubes, {name: held-out cube}). With a CAVE folder: one real scene, its
    bottom rows held out; otherwise a synthetic scene held out and three others of its
    materials."""
    if cave:
        found = find_scenes(cave)
        if not found:
            raise FileNotFoundError(f"no CAVE scenes (<scene>_ms folders) under {cave}")
        name = cave_demo_scene(found)
        cube = read_cave_scene(found[name])
        split = cube.shape[1] - HELD_OUT_ROWS
        return [cube[:, :split]], {f"{name}_bottom": cube[:, split:]}
    # As with a CAVE scene, the network learns on the materials of the scene it is tested on,
    # here in other arrangements: a learnt prior needs its domain, and the held-out scene's
    # eight spectra are its whole domain (trained on scenes of other spectra, it learnt
    # nothing that carried over: benchmarks/RESULTS.md).
    held_out = seed + 99
    return ([synthetic_scene(192, seed=seed + i, material_seed=held_out) for i in range(3)],
            {"synthetic": synthetic_scene(128, seed=held_out)})


def cave_demo_scene(found: dict) -> str:
    """The scene of a CAVE folder ({name: folder}) that `dhif demo --cave` uses:
    CAVE_DEMO_SCENE, else the first that the shipped model did not learn from, else (with a
    line that says so) the first."""
    if CAVE_DEMO_SCENE in found:
        return CAVE_DEMO_SCENE
    learnt = set(pretrained_record(8)["train_scenes"])
    unseen = [name for name in found if name not in learnt]
    if unseen:
        return unseen[0]
    name = next(iter(found))
    print(f"dhif demo: every scene under the folder trained the shipped model; {name}'s bottom rows are not "
          "held out from it", flush=True)
    return name


def demo_config(out: Path, steps: int, device: str, seed: int, initial_estimate: str = "cnmf") -> TrainConfig:
    """A small DHIF-Net that learns something useful in minutes on two cores: one stage, a
    quarter-width U-Net, 32-pixel patches and lr 5e-4 (on a 2-core CPU, each of these
    raised the PSNR reached in 90 s; wider, deeper or with larger patches the network
    trains too few steps in that time). It starts from a classical estimate made on whole
    scenes (best_start's) and learns a correction; R and B start from the physics, as the
    shipped model's recipe does."""
    return short_run_config(out, steps, scale=8, stages=1, width=16, head_width=32, patch=32, lr=5e-4, device=device,
                            seed=seed, initial_estimate=initial_estimate, init_operators="physics")


def best_start(train_cubes, srf, config: TrainConfig) -> tuple:
    """(the start that scores best on the training cubes, {start: mean PSNR there}), of
    component substitution and CNMF, each made on a whole cube. On the synthetic scenes CNMF
    is the better (their model, a few spectra mixed, is CNMF's), and from component
    substitution the network ended 0.5 dB below CNMF; on a CAVE scene component substitution
    is, and from CNMF the network fell below CNMF (benchmarks/RESULTS.md)."""
    cubes = [crop_to_multiple(cube, config.scale)[None] for cube in train_cubes]
    simulated = [(degrade(c, config.scale, config.sigma), to_msi(c, srf), c) for c in cubes]
    scores = {}
    for start in WHOLE_SCENE_STARTS:
        candidate = dataclasses.replace(config, initial_estimate=start)
        scores[start] = sum(psnr(initial_estimate(candidate, lr, msi).clamp(0, 1), hr)
                            for lr, msi, hr in simulated) / len(simulated)
    return max(scores, key=scores.get), scores


def fine_tune_shipped(config: TrainConfig, dataset, srf, out: Path, progress: bool = True):
    """The shipped model for config's scale trained `config`'s steps further on `dataset`
    at FINE_TUNE_LR, from config's start, in `out` (progress: its progress bar). As trained,
    on the synthetic scene it was 1.4 dB below component substitution: what it learnt on
    CAVE (its spectra, its shapes) does not carry to these eight materials
    (benchmarks/RESULTS.md); `dhif fuse` fine-tunes it on a pair for the same reason."""
    shipped = load_checkpoint(pretrained_path(config.scale))
    network = {**ModelConfig.from_dict(shipped["config"]).network_dict(), "initial_estimate": config.initial_estimate}
    fine_tune = dataclasses.replace(config, out=str(out), lr=FINE_TUNE_LR, **network)
    return train(fine_tune, dataset, srf=srf, progress=progress, initial_weights=shipped["model"]).model


def summary_line(by_method: dict) -> str:
    """PSNR, SAM and ERGAS of bicubic, component substitution (the networks' start), the
    classical method that scores best on the held-out scene where it is another, and the two
    networks."""
    strongest = max(BASELINES, key=lambda m: by_method[m]["psnr"])
    shown = ("bicubic", "cs", *(() if strongest in ("bicubic", "cs") else (strongest,)), *NETWORKS)
    return " | ".join(f"{METHOD_NAMES[m]}{' (best classical)' if m == strongest else ''}: PSNR "
                      f"{by_method[m]['psnr']:.2f} dB, SAM {by_method[m]['sam']:.2f} deg, ERGAS "
                      f"{by_method[m]['ergas']:.3f}" for m in shown)


def run_demo(cave=None, steps: int = DEFAULT_STEPS, out=None, overwrite: bool = False, device: str = "auto",
             seed: int = 0) -> dict:
    """`dhif demo`: a real CAVE scene from the folder `cave`, or synthetic scenes; the
    results in `out` (default demo_out, or demo_out_cave). Returns each method's metrics."""
    picked = pick_device(device)  # refuse an unusable device before any work
    out = Path(out or ("demo_out_cave" if cave else "demo_out"))
    train_cubes, test_cubes = demo_scenes(cave, seed)
    # A demo stopped during training (Ctrl-C, SIGTERM) left the state of its runs and no
    # results: the same command resumes the one it stopped.
    interrupted = (out / RUNS[0] / "last.pt").exists() and not any((out / n).exists() for n in RESULTS)
    claim_output(out, RESULTS if interrupted and not overwrite else RUNS + RESULTS, overwrite)
    srf = spectral_response("nikon_d700")
    start, scores = best_start(train_cubes, srf, demo_config(out / RUNS[0], steps, device, seed))
    config = demo_config(out / RUNS[0], steps, device, seed, start)
    print(f"dhif demo: the network starts from {METHOD_NAMES[start]}, the better on the training data ("
          + ", ".join(f"{METHOD_NAMES[m]} {v:.2f} dB" for m, v in scores.items()) + ")", flush=True)
    rounded = config.epochs * SHORT_RUN_STEPS_PER_EPOCH  # whole epochs
    print(f"dhif demo: training a small DHIF-Net for {rounded} steps on "
          f"{'CAVE' if cave else 'synthetic'} data ({len(train_cubes)} training cube(s))", flush=True)
    dataset = PatchDataset(train_cubes, config.scale, srf, config.patch, config.samples_per_epoch, config.sigma,
                           config.seed, start=partial(initial_estimate, config))
    started = time.time()
    models = {"dhif": train(config, dataset, srf=srf).model}
    # Beside it, the model that ships with dhif (an hour of training on CAVE), given the same
    # steps on the same data: what starting from it buys.
    print(f"dhif demo: fine-tuning the shipped x{config.scale} model (an hour of training on CAVE) for {rounded} "
          f"steps on the same data", flush=True)
    models["fine_tuned"] = fine_tune_shipped(config, dataset, srf, out / RUNS[1])
    trained_in = time.time() - started
    # The synthetic scenes are drawn on CAVE's band grid.
    test_set = SceneDataset(test_cubes, config.scale, srf, config.sigma, wavelengths=CAVE_WAVELENGTHS)
    rows = evaluate(models, test_set, picked, out, progress=False, baselines=tuple(BASELINES))
    print(format_table(rows))
    by_method = {r["method"]: r for r in rows}
    print(f"figures and metrics in {out}/ ; trained {rounded} steps each in {trained_in:.0f} s")
    print(f"demo result ({next(iter(test_cubes))}, x8, {rounded} steps): {summary_line(by_method)}")
    return by_method
