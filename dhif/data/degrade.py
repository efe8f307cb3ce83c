"""The authors' observation model: blur and decimate for the LR-HSI, a spectral response
for the HR-MSI."""
import torch


def gaussian_psf(size: int, sigma: float, dtype=torch.float64) -> torch.Tensor:
    """A size x size Gaussian PSF summing to 1: the outer product of a 1-D Gaussian window
    centred at (size - 1) / 2 (MATLAB's fspecial('gaussian'))."""
    offsets = torch.arange(size, dtype=dtype) - (size - 1) / 2
    window = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
    psf = torch.outer(window, window)
    return psf / psf.sum()


def psf_to_otf(psf: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The optical transfer function of a PSF for circular convolution on (height, width):
    its centre pixel (index size // 2) at (0, 0), as MATLAB's psf2otf does, and a PSF wider
    than the grid wrapped around it (each tap added at its position modulo the size), as
    circular convolution with it is."""
    rows = (torch.arange(psf.shape[0], device=psf.device) - psf.shape[0] // 2) % height
    columns = (torch.arange(psf.shape[1], device=psf.device) - psf.shape[1] // 2) % width
    padded = psf.new_zeros(height, width)
    padded.index_put_((rows[:, None], columns[None, :]), psf, accumulate=True)
    return torch.fft.fft2(padded)


def blur(hr_hsi: torch.Tensor, scale: int, sigma: float = 2.0, window: int = None) -> torch.Tensor:
    """Circular Gaussian blur of (..., H, W) through the FFT, over a window x window PSF
    (None: scale x scale, the authors')."""
    height, width = hr_hsi.shape[-2:]
    otf = psf_to_otf(gaussian_psf(window or scale, sigma).to(hr_hsi.device), height, width)
    spectrum = torch.fft.fft2(hr_hsi.to(torch.float64)) * otf
    return torch.fft.ifft2(spectrum).real.to(hr_hsi.dtype)


def decimation_start(scale: int) -> int:
    """The first HR pixel that the LR-HSI keeps on each axis: the authors' scale // 2 - 1 at
    even scales (3 at x8, 7 at x16), and at odd ones the centre of the blur window, where a
    sensor's LR pixel lies over its block of HR pixels (1 at x3)."""
    return (scale - 1) // 2


def degrade(hr_hsi: torch.Tensor, scale: int, sigma: float = 2.0, snr_db: float = None,
            generator: torch.Generator = None, window: int = None) -> torch.Tensor:
    """The LR-HSI of (C, H, W) or (B, C, H, W) by the authors' protocol: circular Gaussian
    blur (over a window x window PSF; None: scale x scale), then every scale-th pixel from
    decimation_start(scale). With snr_db, white Gaussian noise at that signal-to-noise ratio
    (per image) is added."""
    if hr_hsi.dim() not in (3, 4):
        raise ValueError(f"degrade: expected (C, H, W) or (B, C, H, W), got shape {tuple(hr_hsi.shape)}")
    if scale < 1 or hr_hsi.shape[-1] % scale or hr_hsi.shape[-2] % scale:
        raise ValueError(f"degrade: the size {tuple(hr_hsi.shape[-2:])} is not divisible by the scale {scale}")
    start = decimation_start(scale)
    lr = blur(hr_hsi, scale, sigma, window)[..., start::scale, start::scale]
    if snr_db is not None:
        power = lr.pow(2).mean(dim=(-3, -2, -1), keepdim=True)
        noise_std = torch.sqrt(power / 10 ** (snr_db / 10))
        noise = torch.randn(lr.shape, generator=generator, dtype=lr.dtype).to(lr.device)
        lr = lr + noise_std * noise
    return lr


def upsample_bicubic(lr_hsi: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic upsampling (align_corners=False): the baseline and DHIF-Net's Z0."""
    squeeze = lr_hsi.dim() == 3
    x = lr_hsi[None] if squeeze else lr_hsi
    out = torch.nn.functional.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    return out[0] if squeeze else out

