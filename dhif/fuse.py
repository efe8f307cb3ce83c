"""`dhif fuse`: fuse a user's own LR-HSI and HR-MSI, with no ground truth.

With --checkpoint, a trained model is applied. Without one, a small DHIF-Net is trained
on the pair itself at reduced resolution (Wald's protocol): both inputs are degraded by
the scale, the network learns to recover the given LR-HSI from them, and is then applied
to the full-resolution pair. The report gives that reduced-resolution accuracy and the
consistency of the fused cube with the LR-HSI it came from.
"""
import json
from pathlib import Path

import torch

from .baselines import bicubic
from .checkpoint import model_from_checkpoint
from .data import PairPatchDataset, crop_to_multiple, degrade, read_cube
from .inference import reconstruct_image
from .metrics import psnr, sam
from .report import claim_output, save_cube, save_figures, write_atomic
from .train import TrainConfig, pick_device, train


def _outputs(cube_format: str) -> tuple:
    """What `dhif fuse` writes in its output folder."""
    return ("run", f"fused.{cube_format}", "report.json", "fused_composite.png", "fused_spectra.png")


def _check_finite(cube: torch.Tensor, path):
    bad = int((~torch.isfinite(cube)).sum())
    if bad:
        raise ValueError(f"{path} holds {bad} NaN or infinite values; fill or mask them before fusing")


def fuse_pair(args):
    """`dhif fuse` with its parsed arguments."""
    lr_hsi = read_cube(args.lr_hsi, args.lr_key, args.lr_layout)
    hr_msi = read_cube(args.hr_msi, args.msi_key, args.msi_layout)
    _check_finite(lr_hsi, args.lr_hsi)
    _check_finite(hr_msi, args.hr_msi)
    ratio = hr_msi.shape[1] / lr_hsi.shape[1]
    scale = args.scale or int(round(ratio))
    if hr_msi.shape[1] != lr_hsi.shape[1] * scale or hr_msi.shape[2] != lr_hsi.shape[2] * scale:
        raise ValueError(f"the HR-MSI {tuple(hr_msi.shape[1:])} is not the LR-HSI {tuple(lr_hsi.shape[1:])} "
                         f"times the scale {scale}")
    smallest = scale * 16  # self-training degrades the LR-HSI by the scale, and the U-Net divides it by 16
    if not args.checkpoint and min(lr_hsi.shape[1:]) < smallest:
        raise ValueError(f"the LR-HSI is {lr_hsi.shape[1]} x {lr_hsi.shape[2]} pixels; training on the pair itself "
                         f"at scale {scale} needs at least {smallest} x {smallest}. Give a trained model with "
                         "--checkpoint instead")
    out = Path(args.out)
    device = pick_device(args.device)
    claim_output(out, _outputs(args.format), args.overwrite)
    report = {"lr_hsi": list(lr_hsi.shape), "hr_msi": list(hr_msi.shape), "scale": scale}
    if args.checkpoint:
        model = model_from_checkpoint(args.checkpoint, device)
    else:
        # Reduced resolution: (degrade(LR-HSI), degrade(HR-MSI)) -> LR-HSI.
        target = crop_to_multiple(lr_hsi, smallest)
        msi = crop_to_multiple(hr_msi, scale * smallest)[:, :target.shape[1] * scale, :target.shape[2] * scale]
        msi_low, hsi_low = degrade(msi, scale), degrade(target, scale)
        patch = min(64, target.shape[1], target.shape[2])
        config = TrainConfig(out=str(out / "run"), scale=scale, hsi_channels=lr_hsi.shape[0],
                             msi_channels=hr_msi.shape[0], stages=args.stages, width=args.width,
                             head_width=args.head_width, epochs=1_000_000, samples_per_epoch=32, batch_size=4,
                             patch=patch, lr=1e-3, lr_decay_until=0, val_every=0, time_limit=args.minutes * 60,
                             device=args.device, seed=args.seed, workers=0)
        print(f"dhif fuse: no checkpoint; training {args.minutes:g} min on the pair at reduced resolution "
              f"({tuple(hsi_low.shape)} + {tuple(msi_low.shape)} -> {tuple(target.shape)})", flush=True)
        result = train(config, PairPatchDataset(hsi_low, msi_low, target, scale, patch, config.samples_per_epoch,
                                                args.seed))
        model = model_from_checkpoint(result["checkpoint"], device)
        reduced = reconstruct_image(model, hsi_low[None].to(device), msi_low[None].to(device), args.tile, args.overlap).cpu()
        base = bicubic(hsi_low[None], None, scale)
        report["reduced_resolution"] = {
            "dhif": {"psnr": psnr(reduced.clamp(0, 1), target[None]), "sam": sam(reduced, target[None])},
            "bicubic": {"psnr": psnr(base.clamp(0, 1), target[None]), "sam": sam(base, target[None])}}
    fused = reconstruct_image(model, lr_hsi[None].to(device), hr_msi[None].to(device), args.tile, args.overlap,
                       progress=True).clamp(0, 1)
    # Consistency: the fused cube, degraded again, against the LR-HSI it came from.
    report["consistency_psnr_db"] = psnr(degrade(fused.cpu(), scale), lr_hsi[None])
    fused_np = fused[0].cpu().numpy()
    save_cube(out / f"fused.{args.format}", fused_np)
    save_figures(out, "fused", None, {"dhif": fused_np,
                                      "bicubic": bicubic(lr_hsi[None], None, scale)[0].clamp(0, 1).numpy()},
                 inputs={"LR-HSI (input)": lr_hsi.numpy(), "HR-MSI (input)": hr_msi.numpy()})
    write_atomic(out / "report.json", json.dumps(report, indent=2, allow_nan=False))
    print(json.dumps(report, indent=2))
    print(f"fused cube {tuple(fused_np.shape)} and figures written to {out}/")
