"""How well a fusion does without ground truth: every method at reduced resolution (Wald's
protocol), the consistency of the fused cube with its input, and the one-line verdict."""
from ..baselines import DEFAULT_BASELINES, Observation, run_baseline
from ..data import crop_pair
from ..data.units import clip_to_input_range
from ..inference import reconstruct_image
from ..metrics import ergas, psnr_over_valid, sam, valid_pixels
from ..profiling import timed_call
from ..report import METHOD_NAMES
from .files import cube_files

# The starts that --initial-estimate auto chooses from: a network trained on a pair computes
# its start on each training patch, where CNMF's unmixing has too few pixels.
AUTO_STARTS = ("bicubic", "cs")
FULL_RESOLUTION = (
    "every method on the whole pair, without a truth: lr_consistency_psnr, the cube degraded by the PSF and "
    "decimation against the LR-HSI; msi_consistency_psnr, the cube through the estimated response against the "
    "HR-MSI (dB, each input's maximum as peak: how well a result explains its inputs, not its accuracy); "
    "d_lambda, d_s, qnr: Alparone et al., PE&RS 74(2), 2008 (Q on 32 x 32 blocks, p = q = 1); hqnr: Aiazzi et al., "
    "Proc. SPIE 9244, 2014, with d_lambda_khan = 1 - Q2n of the degraded cube against the LR-HSI (dhif.quality)")



def reduced_resolution(model, lr_hsi, hr_msi, observation: Observation, device, tile, overlap, precision="fp32",
                       baselines=DEFAULT_BASELINES, lr_valid=None) -> dict:
    """Wald's protocol: every method (DHIF-Net unless model is None, and the baselines) fuses
    the inputs degraded by the observation's PSF and scale, scored against the LR-HSI (PSNR
    with the LR-HSI's own peak, SAM, ERGAS, seconds) on its pixels with data (lr_valid).
    Scale-free: the inputs may be in any units, as long as every method sees the same. The
    baselines know the reduced pair's blur (it is made here) and estimate its response."""
    scale = observation.scale
    target, msi, valid = crop_pair(lr_hsi, hr_msi, scale, scale, lr_valid)
    reduced = Observation(scale, observation.sigma, window=observation.window)  # made here: known
    low_hsi, low_msi = reduced.degrade(target[None]), reduced.degrade(msi[None])
    timed = {}
    if model is not None:
        fused, seconds = timed_call(reconstruct_image, model, low_hsi.to(device), low_msi.to(device), tile, overlap,
                                    precision=precision)
        timed["dhif"] = (fused.cpu(), seconds)
    timed.update({m: run_baseline(m, low_hsi.to(device), low_msi.to(device), reduced) for m in baselines})
    truth = valid_pixels(target[None], valid)
    scores = {}
    for method, (result, seconds) in timed.items():
        result = valid_pixels(clip_to_input_range(result.cpu(), lr_hsi, hr_msi), valid)
        scores[method] = {"psnr": psnr_over_valid(result, truth), "sam": sam(result, truth),
                          "ergas": ergas(result, truth, scale), "seconds": round(seconds, 3)}
    return scores


def best_start(lr_hsi, hr_msi, observation: Observation, device, lr_valid=None) -> tuple:
    """(the better start for a network trained on the pair, {start: PSNR}): of the initial
    estimates DHIF-Net has (bicubic, component substitution), the one that scores higher at
    reduced resolution, where the network is trained. Component substitution is the stronger
    wherever the HR-MSI's detail follows the LR-HSI's bands; where it does not (a pair whose
    response or blur is not the assumed one), it can fall below bicubic."""
    scores = reduced_resolution(None, lr_hsi, hr_msi, observation, device, None, 0, baselines=AUTO_STARTS,
                                lr_valid=lr_valid)
    psnrs = {start: scores[start]["psnr"] for start in AUTO_STARTS}
    return max(psnrs, key=psnrs.get), psnrs


def full_resolution_baselines(lr_data, msi_data, observation: Observation, device, baselines) -> tuple:
    """({method: (C, H, W) cube in the LR-HSI's units}, {method: seconds}) of the baselines
    on the whole pair with the observation's PSF (estimated, given or assumed); each
    estimates the response for that PSF."""
    cubes, seconds = {}, {}
    for method in baselines:
        cube, seconds[method] = run_baseline(method, lr_data[None].to(device), msi_data[None].to(device), observation)
        cubes[method] = clip_to_input_range(cube[0].cpu(), lr_data, msi_data)
    return cubes, {m: round(t, 3) for m, t in seconds.items()}


# Below this many pixels a side, the reduced pair's LR-HSI (the LR-HSI degraded by the scale
# again) is too small for its scores to rank anything: at x16 a 512 x 512 scene's is 2 x 2,
# where component substitution scored -28.5 dB on CAVE's flowers (benchmarks/RESULTS.md).
FEWEST_REDUCED_PIXELS = 8
# A model applied as trained meets the reduced pair `scale` times coarser than the data it
# learnt from. Measured with the shipped models (benchmarks/RESULTS.md, "What reduced
# resolution says of a model applied as trained").
APPLIED_AS_TRAINED = (
    "no verdict on DHIF-Net, applied as trained: at reduced resolution it meets the scene {scale} x coarser than the "
    "data it learnt from, where it ranks low (the shipped models at x4 and x8 on 5 CAVE scenes they never saw: below "
    "component substitution there in 10 runs of 10, above it against the truth in 8); --truth scores every method "
    "against a reference where you have one")


def verdict(scores: dict, trained: dict, scale: int, reduced_side: int, cube_format: str = "npy") -> str:
    """One line: the best method at reduced resolution (reduced_side: the reduced LR-HSI's
    smaller side, in pixels), and what to do when it is not DHIF-Net."""
    ranked = sorted(scores, key=lambda m: scores[m]["psnr"], reverse=True)
    if len(ranked) == 1:
        return f"DHIF-Net at reduced resolution: PSNR {scores['dhif']['psnr']:.2f} dB (no baselines chosen)"
    best, other = ranked[0], ranked[1] if ranked[0] == "dhif" else "dhif"
    line = (f"best at reduced resolution: {METHOD_NAMES[best]} (PSNR {scores[best]['psnr']:.2f} dB; "
            f"{METHOD_NAMES[other]} {scores[other]['psnr']:.2f} dB)")
    if reduced_side < FEWEST_REDUCED_PIXELS:
        return (f"{line}; no verdict: at reduced resolution the LR-HSI is {reduced_side} pixels a side, too few to "
                "rank methods")
    if best == "dhif":
        return line
    if not trained.get("trained_here"):
        return f"{line}; {APPLIED_AS_TRAINED.format(scale=scale)}"
    return (f"{line}: train longer (--steps) or give a trained --checkpoint, or use "
            f"{' + '.join(cube_files(best, cube_format))}, written with --save-baselines")


def format_scores(scores: dict) -> str:
    lines = [f"{'reduced resolution':<24}{'PSNR dB':>9}{'SAM deg':>9}{'ERGAS':>8}{'seconds':>9}"]
    lines += [f"{METHOD_NAMES[m]:<24}{s['psnr']:>9.2f}{s['sam']:>9.2f}{s['ergas']:>8.3f}{s['seconds']:>9.2f}"
              for m, s in scores.items()]
    return "\n".join(lines)


def format_full_resolution(quality: dict, truth: dict = None) -> str:
    """The full-resolution table: consistency with each input, the QNR family and, where a
    truth was given, the scores against it."""
    header = (f"{'full resolution':<24}{'LR dB':>7}{'MSI dB':>8}{'D-lam':>7}{'D-s':>7}{'QNR':>7}{'HQNR':>7}"
              + (f"{'PSNR dB':>9}{'SAM deg':>9}{'ERGAS':>8}{'SSIM':>7}" if truth else ""))
    lines = [header]
    for method, q in quality.items():
        line = (f"{METHOD_NAMES[method]:<24}{q['lr_consistency_psnr']:>7.2f}{q['msi_consistency_psnr']:>8.2f}"
                f"{q['d_lambda']:>7.4f}{q['d_s']:>7.4f}{q['qnr']:>7.4f}{q['hqnr']:>7.4f}")
        if truth:
            t = truth[method]
            line += f"{t['psnr']:>9.2f}{t['sam']:>9.2f}{t['ergas']:>8.3f}{t['ssim']:>7.4f}"
        lines.append(line)
    return "\n".join(lines)
