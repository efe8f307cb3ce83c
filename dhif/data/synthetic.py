"""Small synthetic hyperspectral scenes, so that the demo and the tests need no dataset.

A scene mixes a handful of smooth material spectra (sums of Gaussian bumps over 400-700
nm) through piecewise-constant abundance maps (discs and rectangles on a two-material
gradient), with smooth shading and fine texture: spatially sharp, spectrally smooth, like
the CAVE scenes.
"""
import numpy as np
import torch


def material_spectra(count: int, bands: int, rng: np.random.Generator) -> np.ndarray:
    """(count, bands) smooth reflectance spectra in [0.01, 1]."""
    wavelengths = np.linspace(0.0, 1.0, bands)
    spectra = np.full((count, bands), 0.05)
    for spectrum in spectra:
        spectrum += rng.uniform(0.0, 0.2)
        for _ in range(rng.integers(1, 4)):
            centre, width, height = rng.uniform(-0.1, 1.1), rng.uniform(0.08, 0.35), rng.uniform(0.2, 0.7)
            spectrum += height * np.exp(-0.5 * ((wavelengths - centre) / width) ** 2)
    return np.clip(spectra / spectra.max(axis=1, keepdims=True) * rng.uniform(0.4, 0.95, (count, 1)), 0.01, 1.0)


def _smooth_noise(size: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    coarse = torch.from_numpy(rng.standard_normal((1, 1, cells, cells)))
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0, 0].numpy()


def synthetic_scene(size: int = 128, bands: int = 31, seed: int = 0, materials: int = 8,
                    shapes: int = 24, material_seed: int = None) -> torch.Tensor:
    """A (bands, size, size) float32 cube in [0, 1]; material_seed: the spectra of the scene
    of that seed instead of its own (another arrangement of the same materials)."""
    rng = np.random.default_rng(seed)
    spectra = material_spectra(materials, bands, rng)  # drawn anyway: the layout depends on the seed alone
    if material_seed is not None:
        spectra = material_spectra(materials, bands, np.random.default_rng(material_seed))
    label = np.zeros((size, size), dtype=np.int64)
    gradient = np.linspace(0, 1, size)[None, :] * np.ones((size, 1))
    mix = np.clip(gradient + 0.2 * _smooth_noise(size, 4, rng), 0, 1)
    yy, xx = np.mgrid[0:size, 0:size]
    for _ in range(shapes):
        material = rng.integers(2, materials)
        cy, cx, radius = rng.uniform(0, size, 2).tolist() + [rng.uniform(size / 30, size / 6)]
        if rng.random() < 0.5:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2
        else:
            mask = (abs(yy - cy) < radius) & (abs(xx - cx) < rng.uniform(0.3, 1.5) * radius)
        label[mask] = material
    background = mix[None] * spectra[1][:, None, None] + (1 - mix[None]) * spectra[0][:, None, None]
    cube = np.where(label[None] >= 2, spectra[label].transpose(2, 0, 1), background)
    shading = 0.75 + 0.2 * _smooth_noise(size, 3, rng) + 0.05 * rng.standard_normal((size, size))
    cube = cube * np.clip(shading, 0.3, 1.2)[None]
    return torch.from_numpy(np.clip(cube, 0, 1).astype(np.float32))
