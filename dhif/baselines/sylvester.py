"""FUSE, the closed-form solution of the fusion problem through a Sylvester equation: Wei,
Dobigeon, Tourneret, IEEE TIP 24(11), 2015, "Fast fusion of multi-band images based on
solving a Sylvester equation"."""
import torch

from ..data.degrade import decimation_start, psf_to_otf, upsample_bicubic
from .observation import Observation, msi_in_hsi_units, response


def fuse_sylvester(lr_hsi: torch.Tensor, hr_msi: torch.Tensor, observation: Observation, subspace: int = 15,
                   prior_weight: float = 1e-5, msi_weight: float = 1.0) -> torch.Tensor:
    """(B, C, H, W) minimising, for Z = E X in the LR-HSI's leading `subspace` principal
    directions E (orthonormal),

        ||LR-HSI - S B Z||^2 + msi_weight ||HR-MSI - R Z||^2 + prior_weight ||X - E^T up(LR-HSI)||^2

    with B the observation's circular blur, S its decimation and R its spectral response
    (given, else estimated). The normal equations are a Sylvester equation in X: the p x p
    spectral matrix G = msi_weight (R E)^T R E + prior_weight I is diagonalised, and the
    spatial operator (S B)^T S B is diagonal in the Fourier domain but for the aliasing of
    the decimation, which couples each frequency with its scale^2 aliases: a rank-one
    update per group, solved in closed form (Sherman-Morrison). Needs the blur and the
    response; exact where the data fit the model and R E has full column rank."""
    scale, (batch, bands, height, width) = observation.scale, lr_hsi.shape
    hsi, msi = lr_hsi.double(), msi_in_hsi_units(lr_hsi.double(), hr_msi.double(), observation)
    srf = response(hsi, msi, observation)  # (B, m, C)
    decomposition = torch.linalg.svd(hsi.flatten(2), full_matrices=False)
    basis = decomposition.U[..., :min(subspace, bands)]  # (B, C, p)
    energy = decomposition.S[..., :basis.shape[-1]].pow(2)
    confidence = energy[..., :1] / energy.clamp_min(1e-12 * energy[..., :1])  # 1 for the leading component
    # Work on a grid rolled so that the decimation keeps pixels 0, scale, 2 scale, ...
    start = decimation_start(scale)
    rolled = lambda image, sign: torch.roll(image, shifts=(sign * start, sign * start), dims=(-2, -1))
    project = lambda matrix, image: torch.einsum("bcp,bchw->bphw", matrix, image)
    filled = hsi.new_zeros(batch, basis.shape[-1], height * scale, width * scale)
    filled[..., ::scale, ::scale] = project(basis, hsi)
    otf = psf_to_otf(observation.psf().to(hsi.device), *filled.shape[-2:])
    spectral = srf @ basis  # (B, m, p)
    prior = torch.diag_embed(prior_weight * confidence)  # (B, p, p)
    rhs = (msi_weight * project(spectral, rolled(msi, -1))
           + torch.einsum("bpq,bqhw->bphw", prior, project(basis, rolled(upsample_bicubic(hsi, scale), -1))))
    rhs = torch.fft.fft2(rhs) + otf.conj() * torch.fft.fft2(filled)
    eigenvalues, vectors = torch.linalg.eigh(msi_weight * spectral.transpose(1, 2) @ spectral + prior)
    rhs = torch.einsum("bpq,bphw->bqhw", vectors.to(rhs.dtype), rhs)
    solution = _solve_aliased(rhs, otf, eigenvalues, scale)
    solution = torch.fft.ifft2(torch.einsum("bpq,bqhw->bphw", vectors.to(solution.dtype), solution)).real
    return rolled(torch.einsum("bcp,bphw->bchw", basis, solution), 1).to(lr_hsi.dtype)


def _solve_aliased(rhs: torch.Tensor, otf: torch.Tensor, eigenvalues: torch.Tensor, scale: int) -> torch.Tensor:
    """x with (g I + (S B)^T S B) x = rhs, in the Fourier domain, for every diagonalised
    component of eigenvalue g. Decimation by `scale` averages each frequency with its
    aliases, shifted by multiples of (H, W) / scale: with b the OTF on one such group of
    d = scale^2 frequencies, the group's matrix is g I + conj(b) b^T / d."""
    batch, components, height, width = rhs.shape
    low_h, low_w = height // scale, width // scale
    groups = rhs.reshape(batch, components, scale, low_h, scale, low_w)
    blur = otf.reshape(scale, low_h, scale, low_w)
    g = eigenvalues[..., None, None, None, None].to(rhs.dtype)
    coupled = (blur * groups).sum(dim=(2, 4), keepdim=True)
    energy = blur.abs().pow(2).sum(dim=(0, 2), keepdim=True)
    groups = (groups - blur.conj() * coupled / (scale ** 2 * g + energy)) / g
    return groups.reshape(batch, components, height, width)
