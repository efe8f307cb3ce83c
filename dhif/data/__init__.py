"""Hyperspectral data: readers, the authors' degradation, spectral responses, datasets."""
from .datasets import (CAVE_TEST_SCENES, CAVE_TRAIN_SCENES, CAVE_WAVELENGTHS, PairPatchDataset, PatchDataset, SceneDataset,
                       crop_pair, crop_to_multiple)
from .degrade import blur, degrade, gaussian_psf, psf_to_otf, upsample_bicubic
from .scenes import CUBE_SUFFIXES, SCALINGS, MappedCube, Scenes, find_scenes, load_scenes
from .readers import CubeFile, cave_band_files, load_cube, read_array, read_cave_scene, read_cube
from .srf import RESPONSES, spectral_response, to_msi

__all__ = ["CAVE_TRAIN_SCENES", "CAVE_TEST_SCENES", "CAVE_WAVELENGTHS", "PairPatchDataset", "PatchDataset", "SceneDataset",
           "crop_pair", "crop_to_multiple", "CUBE_SUFFIXES", "SCALINGS", "MappedCube", "Scenes", "find_scenes",
           "load_scenes",
           "blur", "degrade", "gaussian_psf", "psf_to_otf", "upsample_bicubic",
           "CubeFile", "cave_band_files", "load_cube", "read_array", "read_cave_scene", "read_cube", "RESPONSES", "spectral_response", "to_msi"]
