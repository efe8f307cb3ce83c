"""The PSF and the response estimated from a pair: on simulated pairs whose PSF is known,
sigma within 10% and the response within 2%, over the full support and the authors' window."""
import pytest
import torch

from dhif.baselines.estimation import estimate_observation, full_support
from dhif.data import degrade, read_cave_scene, spectral_response, to_msi
from dhif.data.synthetic import synthetic_scene

NIKON = spectral_response("nikon_d700").double()


def _relative(estimate, truth) -> float:
    return float((estimate - truth).norm() / truth.norm())


@pytest.mark.parametrize("sigma, window", [(1.5, "full"), (2.5, "authors")])
def test_sigma_is_found_on_a_synthetic_pair(sigma, window):
    scale, cube = 4, synthetic_scene(128, seed=1).double()
    side = full_support(sigma) if window == "full" else scale
    lr, msi = degrade(cube, scale, sigma, window=side), to_msi(cube, NIKON)
    found = estimate_observation(lr, msi, scale)
    assert found.sigma == pytest.approx(sigma, rel=0.02) and found.window == side
    # A synthetic scene mixes 8 spectra, which settle the response only on their span.
    assert _relative(found.srf @ lr.flatten(1), NIKON @ lr.flatten(1)) < 1e-3
    assert found.residual < 1e-3 < found.assumed_residual
    assert found.observation().describe()["blur"].endswith("(estimated from the pair)")


def test_a_given_sigma_is_used_over_its_full_support():
    scale, cube = 4, synthetic_scene(64, seed=1).double()
    found = estimate_observation(degrade(cube, scale, 1.0, window=7), to_msi(cube, NIKON), scale, sigma=1.0)
    assert (found.sigma, found.window, found.how) == (1.0, 7, "given") and found.residual < 1e-3


def test_pixels_without_data_are_left_out_of_the_fit():
    scale, cube = 4, synthetic_scene(128, seed=1).double()
    lr, msi = degrade(cube, scale, 1.5, window=11), to_msi(cube, NIKON)
    msi[:, 56:72, 56:72] = 0  # a masked region of the HR-MSI
    valid = torch.ones(lr.shape[1:], dtype=torch.bool)
    valid[12:20, 12:20] = False  # the LR pixels whose blur window reaches it
    assert estimate_observation(lr, msi, scale, valid).sigma == pytest.approx(1.5, rel=0.02)


def test_an_lr_hsi_too_small_to_estimate_from_is_refused_in_one_line():
    cube = synthetic_scene(32, seed=1).double()
    with pytest.raises(ValueError, match="too small to estimate its PSF"):
        estimate_observation(degrade(cube, 8, 2.0), to_msi(cube, NIKON), 8)


@pytest.mark.parametrize("scene", ["watercolors", "balloons"])
def test_on_cave_scenes_sigma_within_10_percent_and_response_within_2(cave_dir, scene):
    cube = read_cave_scene(cave_dir / f"{scene}_ms").double()
    msi = to_msi(cube, NIKON)
    for scale in (4, 8):
        for sigma in (1.0, 2.0, 3.0):
            for window in (full_support(sigma), full_support(sigma) + 4, scale):  # 6 sigma + 1 and wider; authors'
                found = estimate_observation(degrade(cube, scale, sigma, window=window), msi, scale)
                case = (scene, scale, sigma, window, found.sigma)
                assert found.sigma == pytest.approx(sigma, rel=0.10), case
                assert _relative(found.srf, NIKON) < 0.02, case


def test_a_fit_that_wants_the_widest_psf_searched_keeps_the_assumed_one():
    scale, cube = 4, synthetic_scene(128, seed=1).double()
    found = estimate_observation(degrade(cube, scale, 8.0, window=49), to_msi(cube, NIKON), scale)  # wider than 4
    assert found.at_limit and (found.how, found.sigma, found.window) == ("assumed", 2.0, scale)
    assert found.observation().describe()["blur"].endswith("(assumed: the pair's own blur is not known)")
