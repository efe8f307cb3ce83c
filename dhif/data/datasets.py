"""Training patches and whole-image test sets, simulated by the authors' protocol."""
import numpy as np
import torch
from torch.utils.data import Dataset

from .degrade import degrade
from .srf import to_msi

CAVE_TRAIN_SCENES = [
    "balloons", "beads", "cd", "chart_and_stuffed_toy", "clay", "cloth", "egyptian_statue", "face",
    "fake_and_real_beers", "fake_and_real_food", "fake_and_real_lemon_slices", "fake_and_real_lemons",
    "fake_and_real_peppers", "fake_and_real_strawberries", "fake_and_real_sushi", "fake_and_real_tomatoes",
    "feathers", "flowers", "glass_tiles", "hairs",
]
CAVE_WAVELENGTHS = np.arange(400, 701, 10.0)  # nm, the database's 31 bands
CAVE_TEST_SCENES = [
    "superballs", "thread_spools", "oil_painting", "paints", "photo_and_face", "pompoms", "real_and_fake_apples",
    "real_and_fake_peppers", "sponges", "stuffed_toys", "jelly_beans", "watercolors",
]


def crop_to_multiple(cube: torch.Tensor, multiple: int) -> torch.Tensor:
    """(C, H, W) cropped at the bottom and right to sizes that are multiples of `multiple`."""
    return cube[:, :cube.shape[1] - cube.shape[1] % multiple, :cube.shape[2] - cube.shape[2] % multiple]


def crop_pair(lr_hsi: torch.Tensor, hr_msi: torch.Tensor, scale: int, multiple: int, lr_valid=None) -> tuple:
    """(LR-HSI, HR-MSI, LR mask): the (C, h, w) LR-HSI cropped at the bottom and right to
    multiples of `multiple` LR pixels, the HR-MSI over the same area (scale times larger),
    and the (h, w) mask of its pixels with data (None stays None)."""
    target = crop_to_multiple(lr_hsi, multiple)
    height, width = target.shape[1:]
    valid = None if lr_valid is None else lr_valid[:height, :width]
    return target, hr_msi[:, :height * scale, :width * scale], valid


class EpochSampledDataset(Dataset):
    """`samples` random training samples per epoch; sample `index` of epoch `e` draws from
    an RNG seeded by (seed, e, index) alone, so that a resumed run draws exactly what an
    uninterrupted one would, with any number of workers or ranks. Call set_epoch at each
    epoch."""

    def __init__(self, samples: int, seed: int):
        self.samples, self.seed = samples, seed
        # In shared memory: DataLoader's persistent workers hold copies of the dataset made
        # when they started, and must still see each new epoch.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int):
        self._epoch.fill_(epoch)

    def __len__(self):
        return self.samples

    def rng(self, index) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])


class InterleavedDataset(Dataset):
    """Sample i from `first` where i is a multiple of `every`, from `second` otherwise (two
    EpochSampledDatasets of the same length and sample shapes): a fixed share of each in
    every batch, in an order that resumes like theirs."""

    def __init__(self, first: EpochSampledDataset, second: EpochSampledDataset, every: int):
        self.first, self.second, self.every = first, second, every

    def __len__(self):
        return len(self.first)

    def set_epoch(self, epoch: int):
        self.first.set_epoch(epoch)
        self.second.set_epoch(epoch)

    def __getitem__(self, index):
        return (self.first if index % self.every == 0 else self.second)[index]


def aligned_crops(lr, highs, top: int, left: int, scale: int, patch: int) -> list:
    """The (C, patch / scale, patch / scale) crop of an LR image and the (C, patch, patch)
    crops of HR images at the HR corner (top, left), a multiple of the scale: one area."""
    low = lr[:, top // scale:(top + patch) // scale, left // scale:(left + patch) // scale]
    return [low, *(high[:, top:top + patch, left:left + patch] for high in highs)]


def random_rot_flip(tensors, rng: np.random.Generator) -> list:
    """The same random rot90 and flips applied to every (C, H, W) tensor of a sample."""
    turns, flip_w, flip_h = int(rng.integers(4)), bool(rng.integers(2)), bool(rng.integers(2))
    out = []
    for t in tensors:
        t = torch.rot90(t, turns, dims=(1, 2))
        t = t.flip(2) if flip_w else t
        out.append((t.flip(1) if flip_h else t).contiguous())
    return out


def random_transpose(tensors, rng: np.random.Generator) -> list:
    """The same random transpose (or none) of every (C, H, W) tensor of a sample: the one
    augmentation that keeps an LR pixel that is off its block's centre aligned with it."""
    if rng.integers(2):
        return [t.transpose(1, 2).contiguous() for t in tensors]
    return [t.contiguous() for t in tensors]


def corners_with_data(valid: torch.Tensor, scale: int, patch: int) -> torch.Tensor:
    """(N, 2) top-left corners, on the scale's grid, of the patch x patch windows of an
    (H, W) mask in which every pixel has data."""
    missing = torch.zeros(valid.shape[0] + 1, valid.shape[1] + 1, dtype=torch.int64)
    missing[1:, 1:] = (~valid).long().cumsum(0).cumsum(1)
    t = torch.arange(0, valid.shape[0] - patch + 1, scale)[:, None]
    l = torch.arange(0, valid.shape[1] - patch + 1, scale)[None, :]  # noqa: E741
    inside = missing[t + patch, l + patch] - missing[t, l + patch] - missing[t + patch, l] + missing[t, l]
    return torch.nonzero(inside == 0) * scale


class PatchDataset(EpochSampledDataset):
    """Random training samples (lr_hsi, hr_msi, hr_hsi) from whole HR cubes: a random scene,
    a random patch, a random rot90 and flips, then the simulated LR-HSI and HR-MSI.
    valid: {scene name: (H, W) mask} for scenes (a dict) with no-data pixels, whose patches
    are drawn only where every pixel has data.

    start: a function (lr_hsi, hr_msi) -> the network's initial estimate, of (1, C, h, w)
    and (1, m, H, W) inputs (dhif.models.initial_estimate), or None. With one, each scene is
    simulated whole, its estimate made once on it, and a sample is (lr_hsi, hr_msi, hr_hsi,
    start), the four cut from the whole scene's at a corner on the LR grid: the network
    then learns to refine the estimate it is given on a whole image, not that of a patch
    (component substitution's regression on a 32 x 32 patch at x8 has 16 LR pixels)."""

    def __init__(self, scenes, scale: int, srf: torch.Tensor, patch: int = 96, samples: int = 20000,
                 sigma: float = 2.0, seed: int = 0, augment: bool = True, valid: dict = None, start=None):
        super().__init__(samples, seed)
        if start is not None and valid:
            raise ValueError("PatchDataset: start is not available for scenes with no-data pixels")
        names = list(scenes) if isinstance(scenes, dict) else [None] * len(scenes)
        self.scenes = list(scenes.values()) if isinstance(scenes, dict) else list(scenes)
        if not self.scenes:
            raise ValueError("PatchDataset: no scenes")
        if patch % scale:
            raise ValueError(f"PatchDataset: patch {patch} is not divisible by the scale {scale}")
        for cube in self.scenes:
            if min(cube.shape[1:]) < patch:
                raise ValueError(f"PatchDataset: a scene of size {tuple(cube.shape[1:])} is smaller than the "
                                 f"patch {patch}")
        self.corners = [self._corners(name, (valid or {}).get(name), patch) for name in names]
        self.scale, self.srf, self.patch, self.sigma, self.augment = scale, srf, patch, sigma, augment
        self.simulated = None if start is None else [self._simulated(cube, start) for cube in self.scenes]

    def _simulated(self, cube, start) -> tuple:
        """(LR-HSI, HR-MSI, HR-HSI, initial estimate) of a whole scene, (C, H, W) each."""
        hr = crop_to_multiple(cube, self.scale)
        lr, msi = degrade(hr, self.scale, self.sigma), to_msi(hr, self.srf)
        return lr, msi, hr, start(lr[None], msi[None])[0].to(hr.dtype)

    @staticmethod
    def _corners(name, valid, patch: int):
        if valid is None:
            return None
        corners = corners_with_data(valid, 1, patch)
        if not len(corners):
            raise ValueError(f"scene {name} has no {patch} x {patch} patch free of no-data pixels; leave it out or "
                             "train with a smaller --patch")
        return corners

    def __getitem__(self, index):
        rng = self.rng(index)
        which = rng.integers(len(self.scenes))
        if self.simulated is not None:
            return self._cut(self.simulated[which], rng)
        cube, corners = self.scenes[which], self.corners[which]
        if corners is None:
            top = rng.integers(cube.shape[1] - self.patch + 1)
            left = rng.integers(cube.shape[2] - self.patch + 1)
        else:
            top, left = (int(v) for v in corners[rng.integers(len(corners))])
        hr = cube[:, top:top + self.patch, left:left + self.patch]
        hr = random_rot_flip([hr], rng)[0] if self.augment else hr.contiguous()
        return degrade(hr, self.scale, self.sigma), to_msi(hr, self.srf), hr

    def _cut(self, simulated: tuple, rng) -> tuple:
        """A patch of a whole simulated scene, at a corner on its LR grid. The protocol's PSF
        (scale x scale) is mirror-symmetric about each LR pixel, so turns and flips keep the
        four aligned."""
        lr, *high = simulated
        s, p = self.scale, self.patch
        top, left = (int(rng.integers((size - p) // s + 1)) * s for size in high[0].shape[1:])
        cut = aligned_crops(lr, high, top, left, s, p)
        return tuple(random_rot_flip(cut, rng) if self.augment else (t.contiguous() for t in cut))


class SceneDataset(Dataset):
    """Whole images: (lr_hsi, hr_msi, hr_hsi, name), cropped to a multiple of the scale.
    factors: name -> the factor that brings a scene back to its units (default 1);
    unit_range: the data are known to lie in [0, 1] (CAVE), so results are clipped to it
    and PSNR's peak is 1; wavelengths: the bands' centres in nm, for figures, where known;
    valid: name -> (H, W) mask of the pixels with data, for scenes that have no-data pixels."""

    def __init__(self, scenes: dict, scale: int, srf: torch.Tensor, sigma: float = 2.0, factors: dict = None,
                 unit_range: bool = True, wavelengths=None, valid: dict = None):
        self.names = list(scenes)
        self.scenes, self.scale, self.srf, self.sigma = scenes, scale, srf, sigma
        self.factors, self.unit_range, self.wavelengths = factors or {}, unit_range, wavelengths
        self.valid = valid or {}

    def pixels_with_data(self, name: str):
        """The (H, W) mask of a scene's pixels with data, cropped as its images are, or None."""
        valid = self.valid.get(name)
        return None if valid is None else crop_to_multiple(valid[None], self.scale)[0]

    def __len__(self):
        return len(self.names)

    def __getitem__(self, index):
        name = self.names[index]
        hr = crop_to_multiple(self.scenes[name], self.scale).contiguous()
        return degrade(hr, self.scale, self.sigma), to_msi(hr, self.srf), hr, name


class PairPatchDataset(EpochSampledDataset):
    """Random aligned patches (lr_hsi, hr_msi, target) of one real pair, with rot90 and flips,
    or only transposes where the LR pixels are not centred on their blocks (mirror_symmetric
    False: see Observation.mirror_symmetric). valid: the target's (H, W) mask of pixels with
    data, or None; patches are then drawn only where every target pixel has data."""

    def __init__(self, lr_hsi, hr_msi, target, scale: int, patch: int, samples: int, seed: int = 0, valid=None,
                 mirror_symmetric: bool = True):
        super().__init__(samples, seed)
        self.lr_hsi, self.hr_msi, self.target, self.scale, self.patch = lr_hsi, hr_msi, target, scale, patch
        self.augmentation = random_rot_flip if mirror_symmetric else random_transpose
        self.corners = None if valid is None else corners_with_data(valid, scale, patch)
        if self.corners is not None and not len(self.corners):
            raise ValueError(f"no {patch} x {patch} patch of the LR-HSI is free of no-data pixels: there is too "
                             "little data to train on; give a trained model (--checkpoint or --pretrained)")

    def __getitem__(self, index):
        rng = self.rng(index)
        s, p = self.scale, self.patch
        if self.corners is None:
            top = int(rng.integers((self.target.shape[1] - p) // s + 1)) * s
            left = int(rng.integers((self.target.shape[2] - p) // s + 1)) * s
        else:
            top, left = (int(v) for v in self.corners[rng.integers(len(self.corners))])
        return tuple(self.augmentation(aligned_crops(self.lr_hsi, (self.hr_msi, self.target), top, left, s, p), rng))
