"""How well a fusion does without ground truth: every method at reduced resolution (Wald's
protocol), the consistency of the fused cube with its input, and the one-line verdict."""
from ..baselines import DEFAULT_BASELINES, Observation, run_baseline
from ..data import crop_pair, degrade
from ..data.units import clip_to_input_range
from ..inference import reconstruct_image
from ..metrics import ergas, psnr_over_valid, sam, valid_pixels
from ..models.dhif_net import INITIAL_ESTIMATES
from ..profiling import timed_call
from ..report import METHOD_NAMES
from .files import cube_files

# The pair's own blur is not known: the baselines that need one assume the protocol's, which
# is also the blur of the reduced-resolution pair (exact there); the response is estimated.
ASSUMED_SIGMA = 2.0
CONSISTENCY = ("PSNR (dB) of the fused cube, degraded by the same blur and decimation, against the LR-HSI it "
               "came from: how well the result explains its own input, not its accuracy")



def reduced_resolution(model, lr_hsi, hr_msi, scale, device, tile, overlap, precision="fp32",
                       baselines=DEFAULT_BASELINES, lr_valid=None) -> dict:
    """Wald's protocol: every method (DHIF-Net unless model is None, and the baselines) fuses
    the inputs degraded by the scale, scored against the LR-HSI (PSNR with the LR-HSI's own
    peak, SAM, ERGAS, seconds) on its pixels with data (lr_valid). Scale-free: the inputs may
    be in any units, as long as every method sees the same. The baselines know the reduced
    pair's blur (it is made here) and estimate its spectral response."""
    target, msi, valid = crop_pair(lr_hsi, hr_msi, scale, scale, lr_valid)
    low_hsi, low_msi = degrade(target, scale, ASSUMED_SIGMA)[None], degrade(msi, scale, ASSUMED_SIGMA)[None]
    timed = {}
    if model is not None:
        fused, seconds = timed_call(reconstruct_image, model, low_hsi.to(device), low_msi.to(device), tile, overlap,
                                    precision=precision)
        timed["dhif"] = (fused.cpu(), seconds)
    observation = Observation(scale, ASSUMED_SIGMA)
    timed.update({m: run_baseline(m, low_hsi.to(device), low_msi.to(device), observation) for m in baselines})
    truth = valid_pixels(target[None], valid)
    scores = {}
    for method, (result, seconds) in timed.items():
        result = valid_pixels(clip_to_input_range(result.cpu(), lr_hsi, hr_msi), valid)
        scores[method] = {"psnr": psnr_over_valid(result, truth), "sam": sam(result, truth),
                          "ergas": ergas(result, truth, scale), "seconds": round(seconds, 3)}
    return scores


def best_start(lr_hsi, hr_msi, scale, device, lr_valid=None) -> tuple:
    """(the better start for a network trained on the pair, {start: PSNR}): of the initial
    estimates DHIF-Net has (bicubic, component substitution), the one that scores higher at
    reduced resolution, where the network is trained. Component substitution is the stronger
    wherever the HR-MSI's detail follows the LR-HSI's bands; where it does not (a pair whose
    response or blur is not the assumed one), it can fall below bicubic."""
    scores = reduced_resolution(None, lr_hsi, hr_msi, scale, device, None, 0, baselines=INITIAL_ESTIMATES,
                                lr_valid=lr_valid)
    psnrs = {start: scores[start]["psnr"] for start in INITIAL_ESTIMATES}
    return max(psnrs, key=psnrs.get), psnrs


def full_resolution_baselines(lr_data, msi_data, scale, device, baselines) -> tuple:
    """({method: (C, H, W) cube in the LR-HSI's units}, {method: seconds}) of the baselines
    on the whole pair, whose blur is assumed and response estimated."""
    observation = Observation(scale, ASSUMED_SIGMA, blur_known=False)
    cubes, seconds = {}, {}
    for method in baselines:
        cube, seconds[method] = run_baseline(method, lr_data[None].to(device), msi_data[None].to(device), observation)
        cubes[method] = clip_to_input_range(cube[0].cpu(), lr_data, msi_data)
    return cubes, {m: round(t, 3) for m, t in seconds.items()}


def verdict(scores: dict, trained: dict, cube_format: str = "npy") -> str:
    """One line: the best method at reduced resolution, and what to do when it is not DHIF-Net."""
    ranked = sorted(scores, key=lambda m: scores[m]["psnr"], reverse=True)
    if len(ranked) == 1:
        return f"DHIF-Net at reduced resolution: PSNR {scores['dhif']['psnr']:.2f} dB (no baselines chosen)"
    best, other = ranked[0], ranked[1] if ranked[0] == "dhif" else "dhif"
    line = (f"best at reduced resolution: {METHOD_NAMES[best]} (PSNR {scores[best]['psnr']:.2f} dB; "
            f"{METHOD_NAMES[other]} {scores[other]['psnr']:.2f} dB)")
    if best == "dhif":
        return line
    remedy = ("train longer (--steps) or give a trained --checkpoint" if trained.get("trained_here")
              else "a model trained on data like yours")
    return f"{line}: {remedy}, or use {' + '.join(cube_files(best, cube_format))}, written with --save-baselines"


def format_scores(scores: dict, consistency: float) -> str:
    lines = [f"{'reduced resolution':<24}{'PSNR dB':>9}{'SAM deg':>9}{'ERGAS':>8}{'seconds':>9}"]
    lines += [f"{METHOD_NAMES[m]:<24}{s['psnr']:>9.2f}{s['sam']:>9.2f}{s['ergas']:>8.3f}{s['seconds']:>9.2f}"
              for m, s in scores.items()]
    return "\n".join(lines + [f"{'consistency (fused)':<24}{consistency:>9.2f}"])
