"""DHIF-Net (Huang et al., IEEE TCI 2022): unrolled fusion with learned observation
operators and a U-Net that predicts per-voxel spatio-spectral filters.

Generalised beyond the authors' code: any band counts, any integer scale from 2 to 32,
any number of stages, a width multiplier for the U-Net and a hidden width for the filter
heads. At the reference configuration (31 bands, RGB, scale 8, 4 stages, width 64,
7 taps) the parameters and the function are exactly the authors'.
"""
import dataclasses
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ..baselines.cnmf import cnmf
from ..baselines.gsa import component_substitution
from ..baselines.observation import Observation
from ..ops import SPATIO_SPECTRAL_PASSES, adaptive_filter, resolve_impl
from ..ops.registrations import forward_mode_active
from .config import ModelConfig

SCALES = tuple(range(2, 33))  # any integer ratio HR / LR from 2 to 32
INITIAL_ESTIMATES = ("bicubic", "cs", "cnmf")
UNET_DEPTH = 4  # average-pooling steps in the U-Net's encoder
LARGEST_LAYER_FACTOR = 8


def spatial_factors(scale: int) -> list:
    """How a scale is split into strided layers of the blur operators B and B^T.

    Scales up to 8 use one layer; 16 uses two x4 layers, as the authors do; any other scale
    above 8 is split into layers of factor at most 8, each as large as divides what is left
    (32: x8 then x4; 24: x8 then x3; 12: x6 then x2), and a prime above 8 is one layer. A
    layer of factor f has kernel f + 2p, stride f and padding p, with p = 2 for f = 8 and
    p = 1 otherwise (the authors' 12/8/2 and 6/4/1), so that it maps H to H / f exactly and
    its transpose maps H / f back to H.
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in SCALES:
        raise ValueError(f"DHIFNet: scale must be an integer from 2 to 32, got {scale}")
    if scale == 16:
        return [4, 4]
    factors, rest = [], scale
    while rest > LARGEST_LAYER_FACTOR:
        factor = next((f for f in range(LARGEST_LAYER_FACTOR, 1, -1) if rest % f == 0), rest)
        factors.append(factor)
        rest //= factor
    return factors + ([rest] if rest > 1 else [])


def _layer_geometry(factor: int):
    padding = 2 if factor == 8 else 1
    return factor + 2 * padding, factor, padding  # kernel, stride, padding


def _conv_relu_pair(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.ReLU())


class FilterUNet(nn.Module):
    """Features (B, width, H, W) -> three raw tap tensors (B, taps * bands, H, W), for the
    columns, rows and bands passes. H and W must be divisible by 2 ** UNET_DEPTH."""

    def __init__(self, bands: int, taps: int = 7, width: int = 64, head_width: int = None):
        super().__init__()
        widths = [width, 2 * width, 4 * width, 8 * width, 8 * width]
        self.encoder = nn.ModuleList(
            [_conv_relu_pair(c_in, c_out) for c_in, c_out in zip([width] + widths[:-1], widths)])
        # Decoder level j takes (skip, upsampled deeper map); the last level keeps 2 * width.
        decoder_out = [8 * width, 4 * width, 2 * width, 2 * width]
        deeper = [widths[4]] + decoder_out[:-1]
        skips = widths[3::-1]
        self.decoder = nn.ModuleList(
            [_conv_relu_pair(s + d, c_out) for s, d, c_out in zip(skips, deeper, decoder_out)])
        outputs = taps * bands
        hidden = head_width or outputs
        self.heads = nn.ModuleList([
            nn.Sequential(nn.Conv2d(decoder_out[-1], hidden, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(hidden, outputs, 1))
            for _ in range(3)])

    def forward(self, features):
        """The raw taps of the three heads."""
        decoded = self.decode(features)
        return [head(decoded) for head in self.heads]

    def decode(self, features):
        """The U-Net's output, (B, 2 * width, H, W): the input of every head."""
        skips = []
        x = features
        for level, block in enumerate(self.encoder):
            x = block(x if level == 0 else F.avg_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for block in self.decoder:
            x = block(torch.cat([skips.pop(), F.interpolate(x, scale_factor=2, mode="bicubic")], dim=1))
        return x


def initial_estimate(config: ModelConfig, lr_hsi: torch.Tensor, hr_msi: torch.Tensor) -> torch.Tensor:
    """A network's Z0 of (B, C, h, w) and (B, m, H, W) inputs: the LR-HSI upsampled (the
    paper's), or component substitution or CNMF with the data's Gaussian blur (config.sigma,
    psf_window). CNMF unmixes the whole image it is given (a hundred updates of every
    factor): give it whole images (PatchDataset's start for training patches)."""
    if config.initial_estimate == "bicubic":
        return F.interpolate(lr_hsi, scale_factor=config.scale, mode="bicubic", align_corners=False)
    # Least-squares solves and multiplicative updates: in float32 at least, whatever autocast
    # or a half-precision input would choose.
    dtype = torch.promote_types(lr_hsi.dtype, torch.float32)
    inputs = (lr_hsi.to(dtype), hr_msi.to(dtype))
    observation = Observation(config.scale, config.sigma, window=config.psf_window)
    with torch.autocast(lr_hsi.device.type, enabled=False):
        if config.initial_estimate == "cnmf":
            if any(x.requires_grad for x in inputs):
                raise ValueError("DHIFNet: the CNMF start is not differentiable (hundreds of multiplicative "
                                 "updates); differentiate with initial_estimate 'cs' or 'bicubic', or give the "
                                 "start: model(lr_hsi, hr_msi, start)")
            z = cnmf(*inputs, observation)
        else:
            z = component_substitution(*inputs, observation)
    return z.to(lr_hsi.dtype)


class DHIFNet(nn.Module):
    """HR-HSI (B, hsi_channels, H, W) from an LR-HSI (B, hsi_channels, H/scale, W/scale)
    and an HR-MSI (B, msi_channels, H, W): model(lr_hsi, hr_msi).

    recompute_taps: in training, keep the heads' hidden maps but not the taps, and redo the
    heads' last 1x1 convolutions and the filter in the backward. None (default): only
    when the fused filter runs, whose forward is cheap to redo. At the paper's configuration
    this takes a fifth off what a step keeps for its backward (benchmarks/RESULTS.md).
    """

    def __init__(self, config: ModelConfig = None, *, filter_impl: str = "auto", recompute_taps: bool = None,
                 **overrides):
        """config (ModelConfig, default the paper's), with any of its fields overridden by
        keyword: DHIFNet(scale=4, stages=2)."""
        super().__init__()
        base = ModelConfig.from_dict(dataclasses.asdict(config)) if config is not None else ModelConfig()
        self.config = c = dataclasses.replace(base, **overrides)
        if c.stages < 1:
            raise ValueError(f"DHIFNet: stages must be at least 1, got {c.stages}")
        if c.taps < 1 or c.taps % 2 == 0:
            raise ValueError(f"DHIFNet: taps must be a positive odd number, got {c.taps}")
        if c.initial_estimate not in INITIAL_ESTIMATES:
            raise ValueError(f"DHIFNet: initial_estimate must be one of {', '.join(INITIAL_ESTIMATES)}, "
                             f"got {c.initial_estimate!r}")
        self.hsi_channels, self.msi_channels, self.scale = c.hsi_channels, c.msi_channels, c.scale
        self.stages, self.taps, self.filter_impl = c.stages, c.taps, filter_impl
        self.recompute_taps = recompute_taps

        # Learned observation operators: R (spectral response) and B (blur and decimate),
        # each with its adjoint-like partner, each conv followed by LeakyReLU.
        self.spectral_down = nn.Sequential(nn.Conv2d(c.hsi_channels, c.msi_channels, 3, padding=1), nn.LeakyReLU())
        self.spectral_up = nn.Sequential(nn.Conv2d(c.msi_channels, c.hsi_channels, 3, padding=1), nn.LeakyReLU())
        down, up = [], []
        for factor in spatial_factors(c.scale):
            kernel, stride, padding = _layer_geometry(factor)
            down += [nn.Conv2d(c.hsi_channels, c.hsi_channels, kernel, stride, padding), nn.LeakyReLU()]
            up += [nn.ConvTranspose2d(c.hsi_channels, c.hsi_channels, kernel, stride, padding), nn.LeakyReLU()]
        self.spatial_down = nn.Sequential(*down)
        self.spatial_up = nn.Sequential(*up)

        self.embed = nn.Conv2d(c.hsi_channels + c.msi_channels, c.width, 3, padding=1)
        self.dense = nn.ModuleList([nn.Conv2d(c.width * (t + 1), c.width, 3, padding=1) for t in range(c.stages)])
        self.filters = FilterUNet(c.hsi_channels, c.taps, c.width, c.head_width)
        self.eta = nn.Parameter(torch.empty(c.stages))  # step sizes
        self.lam = nn.Parameter(torch.empty(c.stages))  # weights of the filter prior
        self.reset_parameters()

    def reset_parameters(self):
        """The authors' training initialisation: Xavier-uniform conv weights, zero biases,
        eta ~ N(0.1, 0.01), lambda ~ N(1, 0.01)."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.eta, 0.1, 0.01)
        nn.init.normal_(self.lam, 1.0, 0.01)

    @torch.no_grad()
    def start_filters_as_identity(self):
        """Makes every head's last convolution give the identity taps (centre 1, others 0)
        whatever its input, so that u = z: each stage then changes its input only by its data
        terms, and training learns a correction from there instead of first undoing random
        filters (a residual branch started at zero). The convolution's weights are zero, so
        their gradients are not."""
        for head in self.filters.heads:
            last = head[-1]
            last.weight.zero_()
            taps = last.bias.view(self.taps, self.hsi_channels)
            taps.zero_()
            taps[self.taps // 2] = 1

    def _check_inputs(self, lr_hsi, hr_msi):
        if lr_hsi.dim() != 4 or hr_msi.dim() != 4:
            raise ValueError(f"DHIFNet: expected 4-D inputs (B, C, H, W), got lr_hsi {tuple(lr_hsi.shape)} "
                             f"and hr_msi {tuple(hr_msi.shape)}")
        if lr_hsi.shape[1] != self.hsi_channels:
            raise ValueError(f"DHIFNet: lr_hsi has {lr_hsi.shape[1]} bands, the model expects {self.hsi_channels}")
        if hr_msi.shape[1] != self.msi_channels:
            raise ValueError(f"DHIFNet: hr_msi has {hr_msi.shape[1]} bands, the model expects {self.msi_channels}")
        if lr_hsi.shape[0] != hr_msi.shape[0]:
            raise ValueError(f"DHIFNet: batch sizes differ: {lr_hsi.shape[0]} and {hr_msi.shape[0]}")
        lr_size, hr_size = tuple(lr_hsi.shape[2:]), tuple(hr_msi.shape[2:])
        if hr_size != (lr_size[0] * self.scale, lr_size[1] * self.scale):
            raise ValueError(f"DHIFNet: the HR-MSI size {hr_size} is not the LR-HSI size {lr_size} times the "
                             f"scale {self.scale}")

    def _pad_multiple(self) -> int:
        """The LR size must be a multiple of this for the HR size to survive the U-Net."""
        unet = 2 ** UNET_DEPTH
        return unet // math.gcd(unet, self.scale)

    def forward(self, lr_hsi: torch.Tensor, hr_msi: torch.Tensor, start: torch.Tensor = None) -> torch.Tensor:
        """The HR-HSI (B, hsi_channels, H, W) from an LR-HSI (B, hsi_channels, H / scale,
        W / scale) and an HR-MSI (B, msi_channels, H, W) of the same scene. The network was
        built for reflectance in [0, 1]; sizes the U-Net cannot divide are padded and the
        result cropped. start: the initial estimate (B, hsi_channels, H, W) where the caller
        made it on a larger image than these inputs (the whole scene of a training patch:
        PatchDataset's start); None: made here (initial_estimate)."""
        self._check_inputs(lr_hsi, hr_msi)
        if start is not None and start.shape != (*lr_hsi.shape[:2], *hr_msi.shape[2:]):
            raise ValueError(f"DHIFNet: the initial estimate is {tuple(start.shape)}; expected "
                             f"{(*lr_hsi.shape[:2], *hr_msi.shape[2:])}, the LR-HSI's bands at the HR-MSI's size")
        height, width = hr_msi.shape[2:]
        multiple = self._pad_multiple()
        pad_h, pad_w = (-lr_hsi.shape[2]) % multiple, (-lr_hsi.shape[3]) % multiple
        if pad_h or pad_w:  # replicate-pad the inputs consistently, crop the result
            lr_hsi = F.pad(lr_hsi, [0, pad_w, 0, pad_h], mode="replicate")
            hr_pad = [0, pad_w * self.scale, 0, pad_h * self.scale]
            hr_msi = F.pad(hr_msi, hr_pad, mode="replicate")
            start = None if start is None else F.pad(start, hr_pad, mode="replicate")
        z = self.unrolled(lr_hsi, hr_msi, start)
        return z[..., :height, :width]

    def unrolled(self, lr_hsi: torch.Tensor, hr_msi: torch.Tensor, start: torch.Tensor = None) -> torch.Tensor:
        """The unrolled iterations on inputs whose sizes the U-Net can divide."""
        z = self.initial_estimate(lr_hsi, hr_msi) if start is None else start
        features = []
        recompute = torch.is_grad_enabled() and self._recomputes_taps(z.device)
        for t in range(self.stages):
            spectral_residual = self.spectral_up(self.spectral_down(z) - hr_msi)
            spatial_residual = self.spatial_up(self.spatial_down(z) - lr_hsi)
            features.append(self.embed(torch.cat([z, hr_msi], dim=1)))
            fused = self.dense[t](torch.cat(features, dim=1))
            decoded = self.filters.decode(fused)
            # Each head's input to its last (1x1) convolution; lazily, so that inference holds
            # one head's maps at a time.
            hidden = (head[:-1](decoded) for head in self.filters.heads)
            if recompute:
                u = checkpoint(self._recomputable_estimate, z, *hidden, use_reentrant=False, preserve_rng_state=False)
            else:
                u = self._filtered_estimate(z, hidden)
            z = z - 2 * self.eta[t] * (spectral_residual + spatial_residual + self.lam[t] * (z - u))
        return z

    def initial_estimate(self, lr_hsi: torch.Tensor, hr_msi: torch.Tensor) -> torch.Tensor:
        """Z0, which the stages refine: initial_estimate(self.config, ...)."""
        return initial_estimate(self.config, lr_hsi, hr_msi)

    def _recomputes_taps(self, device) -> bool:
        if not torch.compiler.is_compiling() and (torch._C._are_functorch_transforms_active()
                                                  or forward_mode_active()):
            # torch.func refuses the checkpoint's saved-tensor hooks, and before torch 2.14
            # the checkpoint had no forward-mode rule.
            return False
        if self.recompute_taps is not None:
            return self.recompute_taps
        return resolve_impl(self.filter_impl, device) == "fused"

    def _filtered_estimate(self, z, hidden):
        """U: z filtered pass by pass, each with the taps that a head's last convolution makes
        of its map in `hidden` (an iterable, consumed one map at a time)."""
        batch, bands, height, width = z.shape
        u = z
        for head, maps, (dim, padding) in zip(self.filters.heads, hidden, SPATIO_SPECTRAL_PASSES):
            # Under autocast the heads return bf16/fp16 taps while z stays float32: the filter
            # runs in z's dtype.
            taps = head[-1](maps).view(batch, self.taps, bands, height, width).to(z.dtype)
            u = adaptive_filter(u, taps, dim, padding, True, self.filter_impl)
            del maps, taps  # before the next head's maps are made
        return u

    def _recomputable_estimate(self, z, *hidden):
        return self._filtered_estimate(z, hidden)
