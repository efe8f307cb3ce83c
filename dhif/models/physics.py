"""Starting DHIF-Net's learned observation operators from the known physics.

R and R^T start as the spectral response and its transpose, B and B^T as the Gaussian
blur-and-decimate of the data protocol and its transpose, instead of random weights: the
first stages then take real gradient steps on the data terms from the first iteration,
which matters when training time is short (the demo).
"""
import torch

from ..data.degrade import decimation_start, gaussian_psf
from .dhif_net import DHIFNet, spatial_factors


@torch.no_grad()
def init_observation_operators(model: DHIFNet, srf: torch.Tensor, sigma: float = 2.0, window: int = None):
    """Sets R, R^T (3x3 convs, centre tap = response) and, for scales of one strided layer
    (up to 8, and the primes above), B and B^T (per-band PSF: a Gaussian of `sigma` over
    `window` x `window` HR pixels, default scale x scale, cut to the layer's kernel and
    renormalised where wider) to the true operators; biases to zero."""
    srf = srf.to(model.eta)
    for conv, weight in ((model.spectral_down[0], srf), (model.spectral_up[0], srf.t())):
        conv.weight.zero_()
        conv.weight[:, :, 1, 1] = weight
        conv.bias.zero_()
    if len(spatial_factors(model.scale)) != 1:
        return False
    down, up = model.spatial_down[0], model.spatial_up[0]
    kernel = layer_kernel(gaussian_psf(window or model.scale, sigma), model.scale, down.padding[0],
                          down.weight.shape[-1]).to(srf)
    for conv in (down, up):
        conv.weight.zero_()
        for band in range(model.hsi_channels):
            conv.weight[band, band] = kernel
        conv.bias.zero_()
    return True


def layer_kernel(psf: torch.Tensor, scale: int, padding: int, size: int) -> torch.Tensor:
    """The (size, size) weights of a conv with this stride (scale) and padding that blurs
    with `psf` and decimates as `degrade` does.

    degrade: lr[i] = sum_j psf[j] z[scale * i + start + centre - j] (the PSF's centre index
    at offset 0, samples from decimation_start); the conv: lr[i] = sum_k w[k] z[scale * i -
    padding + k]; so w[start + centre + padding - j] = psf[j].
    """
    first = decimation_start(scale) + psf.shape[0] // 2 + padding - (psf.shape[0] - 1)
    kernel = torch.zeros(size + 2 * psf.shape[0], size + 2 * psf.shape[0], dtype=psf.dtype)
    at = first + psf.shape[0]  # the padded frame holds taps that fall outside the kernel
    kernel[at:at + psf.shape[0], at:at + psf.shape[0]] = psf.flip(0, 1)
    kernel = kernel[psf.shape[0]:psf.shape[0] + size, psf.shape[0]:psf.shape[0] + size]
    return kernel / kernel.sum()
