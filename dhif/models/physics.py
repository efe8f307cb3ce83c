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
def init_observation_operators(model: DHIFNet, srf: torch.Tensor, sigma: float = 2.0):
    """Sets R, R^T (3x3 convs, centre tap = response) and, for scales of one strided layer
    (up to 8, and the primes above), B and B^T (per-band PSF) to the true operators; biases
    to zero."""
    srf = srf.to(model.eta)
    for conv, weight in ((model.spectral_down[0], srf), (model.spectral_up[0], srf.t())):
        conv.weight.zero_()
        conv.weight[:, :, 1, 1] = weight
        conv.bias.zero_()
    factors = spatial_factors(model.scale)
    if len(factors) != 1:
        return False
    scale = model.scale
    down, up = model.spatial_down[0], model.spatial_up[0]
    padding = down.padding[0]
    # lr[i] = sum_j psf[j] z[scale * i + offset - j] (blur centred at scale // 2, samples
    # from decimation_start(scale)) = sum_k w[k] z[scale * i - padding + k]
    # =>  w[offset - j + padding] = psf[j]; offset = scale - 1 at every scale.
    offset = decimation_start(scale) + scale // 2
    first = offset - (scale - 1) + padding
    psf = gaussian_psf(scale, sigma).to(srf).flip(0, 1)
    kernel = torch.zeros(down.weight.shape[-2:], dtype=srf.dtype, device=srf.device)
    kernel[first:first + scale, first:first + scale] = psf
    for conv in (down, up):
        conv.weight.zero_()
        for band in range(model.hsi_channels):
            conv.weight[band, band] = kernel
        conv.bias.zero_()
    return True
