"""GSA-type component substitution with regression weights: Aiazzi, Baronti, Selva, IEEE
TGRS 45(10), 2007, "Improving component substitution pansharpening through multivariate
regression of MS+Pan data", extended to several MSI channels."""
import torch

from ..data.degrade import upsample_bicubic
from .observation import Observation


def component_substitution(lr_hsi: torch.Tensor, hr_msi: torch.Tensor, observation: Observation) -> torch.Tensor:
    """(B, C, H, W) from a (B, C, h, w) LR-HSI and a (B, m, H, W) HR-MSI.

    Each HSI band b is regressed on the LR grid on the MSI channels degraded by the same
    blur and decimation: H_b ~ sum_k a_bk M_k + c_b. The missing detail of every channel,
    M_k - lowpass(M_k), is then injected with those gains:
    Z_b = upsample(H_b) + sum_k a_bk (M_k - lowpass(M_k)). Needs the blur, not the response.
    """
    low_msi = observation.degrade(hr_msi)
    design = torch.cat([low_msi.flatten(2), torch.ones_like(low_msi[:, :1].flatten(2))], dim=1)  # (B, k+1, n)
    target = lr_hsi.flatten(2)  # (B, bands, n)
    gram = design @ design.transpose(1, 2)
    ridge = torch.diag_embed(1e-10 * gram.diagonal(dim1=1, dim2=2))  # relative: the same in any units
    moments = design @ target.transpose(1, 2)
    solved, info = torch.linalg.solve_ex(gram + ridge, moments)
    # Channels that repeat one another (a grey image stored as RGB) leave the Gram matrix
    # singular: the least-squares gains of least norm then, which inject the same detail.
    # Both are computed, and one is chosen without leaving the graph (torch.compile).
    least_norm = torch.linalg.pinv(gram + ridge, hermitian=True) @ moments
    gains = torch.where((info == 0)[:, None, None], solved, least_norm).transpose(1, 2)  # (B, bands, k+1)
    detail = hr_msi - upsample_bicubic(low_msi, observation.scale)
    injected = torch.einsum("bck,bkhw->bchw", gains[..., :-1], detail)
    return upsample_bicubic(lr_hsi, observation.scale) + injected
