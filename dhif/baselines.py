"""Classical baselines that every results table reports beside DHIF-Net."""
import torch

from .data.degrade import degrade, upsample_bicubic


def bicubic(lr_hsi: torch.Tensor, hr_msi: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic upsampling of the LR-HSI alone (the MSI is not used)."""
    return upsample_bicubic(lr_hsi, scale)


def component_substitution(lr_hsi: torch.Tensor, hr_msi: torch.Tensor, scale: int, sigma: float = 2.0) -> torch.Tensor:
    """GSA-type component substitution with regression weights (Aiazzi et al. 2007,
    extended to several MSI channels).

    Each HSI band b is regressed at low resolution on the MSI channels degraded by the same
    blur and decimation: H_b ~ sum_k a_bk M_k + c_b. The missing detail of every channel,
    M_k - upsample(degrade(M_k)), is then injected with those gains:
    Z_b = upsample(H_b) + sum_k a_bk (M_k - upsample(degrade(M_k))).
    """
    batch, bands = lr_hsi.shape[:2]
    msi_lr = degrade(hr_msi, scale, sigma)
    design = torch.cat([msi_lr.flatten(2), torch.ones_like(msi_lr[:, :1].flatten(2))], dim=1)  # (B, k+1, n)
    target = lr_hsi.flatten(2)  # (B, bands, n)
    gram = design @ design.transpose(1, 2)
    ridge = 1e-8 * torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    gains = torch.linalg.solve(gram + ridge, design @ target.transpose(1, 2)).transpose(1, 2)  # (B, bands, k+1)
    detail = hr_msi - upsample_bicubic(msi_lr, scale)
    injected = torch.einsum("bck,bkhw->bchw", gains[..., :-1], detail)
    return upsample_bicubic(lr_hsi, scale) + injected


BASELINES = {"bicubic": bicubic, "cs": component_substitution}
