"""Metrics per scene of a model against the baselines, with figures, cubes and tables."""
from pathlib import Path

from tqdm import tqdm

from . import metrics
from .baselines import BASELINES
from .inference import reconstruct_image
from .report import save_cube, save_figures, write_table

# What evaluate() writes in its output folder.
OUTPUTS = ("metrics.csv", "metrics.json", "figures", "cubes")


def evaluate(model, dataset, device, out_dir=None, tile=None, overlap=32, cube_format=None, figures=True,
             baselines=("bicubic", "cs"), progress=True) -> list:
    """Metrics per scene for DHIF-Net and the baselines. Returns rows {scene, method, psnr, ...};
    with out_dir, writes metrics.csv/json, figures and (cube_format 'npy' or 'mat') cubes."""
    model.eval()
    out_dir = Path(out_dir) if out_dir else None
    rows = []
    for lr, msi, hr, name in tqdm(dataset, desc="test", disable=not progress):
        lr, msi, hr = lr[None].to(device), msi[None].to(device), hr[None].to(device)
        results = {"dhif": reconstruct_image(model, lr, msi, tile, overlap).clamp(0, 1)}
        for method in baselines:
            results[method] = BASELINES[method](lr, msi, model.scale).clamp(0, 1)
        for method, pred in results.items():
            rows.append({"scene": name, "method": method, **metrics.all_metrics(pred, hr, model.scale)})
        if out_dir is not None:
            arrays = {k: v[0].float().cpu().numpy() for k, v in results.items()}
            if figures:
                inputs = {"LR-HSI (input)": lr[0].float().cpu().numpy(), "HR-MSI (input)": msi[0].float().cpu().numpy()}
                save_figures(out_dir / "figures", name, hr[0].float().cpu().numpy(), arrays, inputs=inputs)
            if cube_format:
                save_cube(out_dir / "cubes" / f"{name}.{cube_format}", arrays["dhif"])
    if out_dir is not None:
        write_table(rows, out_dir)
    return rows
