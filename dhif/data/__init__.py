"""Hyperspectral data: readers, the authors' degradation, spectral responses, datasets."""
from .datasets import (CAVE_TEST_SCENES, CAVE_TRAIN_SCENES, PairPatchDataset, PatchDataset, SceneDataset,
                       crop_to_multiple, find_cave_scenes, load_cave)
from .degrade import blur, degrade, gaussian_psf, psf_to_otf, upsample_bicubic
from .readers import cave_band_files, read_array, read_cave_scene, read_cube
from .srf import RESPONSES, spectral_response, to_msi

__all__ = ["CAVE_TRAIN_SCENES", "CAVE_TEST_SCENES", "PairPatchDataset", "PatchDataset", "SceneDataset",
           "crop_to_multiple", "find_cave_scenes", "load_cave",
           "blur", "degrade", "gaussian_psf", "psf_to_otf", "upsample_bicubic", "cave_band_files", "read_array",
           "read_cave_scene", "read_cube", "RESPONSES", "spectral_response", "to_msi"]
