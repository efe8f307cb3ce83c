"""ENVI and GeoTIFF rasters through rasterio (GDAL): a cube with its georeference, band
wavelengths, no-data value and units, read and written. GDAL knows the raster's axes, so a
raster is always (bands, rows, columns); ENVI's BSQ, BIL and BIP interleaves are read alike."""
import contextlib
import dataclasses
import math
import re
import warnings
from pathlib import Path

import numpy as np

ENVI_DATA_SUFFIXES = (".img", ".dat", ".bsq", ".bil", ".bip", ".raw", "")
ENVI_SUFFIXES = (".hdr",) + ENVI_DATA_SUFFIXES[:-1]
TIFF_SUFFIXES = (".tif", ".tiff")
WRITE_DRIVERS = {"envi": "ENVI", "tif": "GTiff"}  # --format -> GDAL driver
# Wavelength units as ENVI headers and GDAL's band metadata spell them, to nm.
UNITS_TO_NM = {"nanometers": 1.0, "nanometer": 1.0, "nm": 1.0, "micrometers": 1e3, "micrometer": 1e3,
               "microns": 1e3, "micron": 1e3, "um": 1e3, "µm": 1e3, "millimeters": 1e6, "mm": 1e6}


@dataclasses.dataclass(frozen=True)
class Georeference:
    """Where a raster lies: its CRS (WKT, or None) and the affine map of (column, row) to
    (x, y), as GDAL's (a, b, c, d, e, f): x = a col + b row + c, y = d col + e row + f."""
    crs: str
    transform: tuple

    def pixel_size(self) -> tuple:
        a, b, _, d, e, _ = self.transform
        return math.hypot(a, d), math.hypot(b, e)

    def bounds(self, height: int, width: int) -> tuple:
        """(left, bottom, right, top) of the raster's outer corners."""
        a, b, c, d, e, f = self.transform
        xs = [c + a * col + b * row for col in (0, width) for row in (0, height)]
        ys = [f + d * col + e * row for col in (0, width) for row in (0, height)]
        return min(xs), min(ys), max(xs), max(ys)

    def refined(self, scale: int) -> "Georeference":
        """The georeference of the grid `scale` times finer over the same area."""
        a, b, c, d, e, f = self.transform
        return Georeference(self.crs, (a / scale, b / scale, c, d / scale, e / scale, f))

    def describe(self) -> dict:
        return {"crs": self.crs, "transform": list(self.transform), "pixel_size": list(self.pixel_size())}


@dataclasses.dataclass
class Raster:
    """What a raster file holds: the stored values and what its metadata say of them."""
    data: np.ndarray     # (C, H, W) as stored
    driver: str          # GDAL's: 'ENVI', 'GTiff' or 'HFA' (ERDAS Imagine)
    georeference: Georeference = None
    nodata: float = None
    wavelengths: np.ndarray = None  # nm
    wavelength_problem: str = None  # why the file's wavelengths could not be used
    units: str = None
    scale_factor: float = None


@contextlib.contextmanager
def _quiet():
    """A raster without a georeference is no fault here: its georeference is None."""
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def is_raster(path: Path) -> bool:
    """ENVI files by suffix; a TIFF only when it is one image of all its bands (a GeoTIFF),
    not a stack of pages, which is read as a bare array."""
    suffix = path.suffix.lower()
    if suffix in ENVI_SUFFIXES:
        return True
    if suffix not in TIFF_SUFFIXES or not path.exists():
        return False
    import rasterio

    try:
        with _quiet(), rasterio.open(path) as dataset:
            return not dataset.subdatasets
    except rasterio.errors.RasterioError:
        return False


def envi_files(path: Path) -> tuple:
    """(header, data file) of an ENVI raster given either of them."""
    if path.suffix.lower() == ".hdr":
        header = path
        stem = path.with_suffix("")
        data = [stem.with_name(stem.name + s) for s in ENVI_DATA_SUFFIXES if stem.with_name(stem.name + s).is_file()]
        if not data:
            tried = ", ".join(stem.name + s for s in ENVI_DATA_SUFFIXES[:-1])
            raise FileNotFoundError(f"ENVI header {path} has no data file beside it (looked for {tried} and "
                                    f"{stem.name})")
        return header, data[0]
    if not path.exists():
        raise FileNotFoundError(f"file not found: {path}")
    for header in (path.with_suffix(".hdr"), path.with_name(path.name + ".hdr")):
        if header.is_file():
            return header, path
    raise FileNotFoundError(f"{path} has no ENVI header beside it ({path.with_suffix('.hdr').name}); an ENVI cube "
                            "is a .hdr file and its data file")


def _is_erdas_imagine(path: Path) -> bool:
    """An .img file without a header may be ERDAS Imagine's format (HFA), which GDAL reads."""
    import rasterio

    if path.suffix.lower() != ".img" or not path.is_file():
        return False
    try:
        with _quiet(), rasterio.open(path) as dataset:
            return dataset.driver == "HFA"
    except rasterio.errors.RasterioError:
        return False


def _check_envi_size(header: Path, data_file: Path, dataset):
    """GDAL reads a data file shorter than its header says as zeros; refuse it instead."""
    envi = dataset.tags(ns="ENVI")
    itemsize = np.dtype(dataset.dtypes[0]).itemsize
    offset = int(envi.get("header_offset", 0))
    expected = offset + dataset.count * dataset.height * dataset.width * itemsize
    actual = data_file.stat().st_size
    if actual != expected:
        raise ValueError(f"{data_file} holds {actual} bytes, but its header {header.name} says {dataset.count} bands "
                         f"x {dataset.height} lines x {dataset.width} samples of {dataset.dtypes[0]} "
                         f"({expected} bytes with the offset): the header's data type, sizes or interleave are wrong")


def _braced(text: str) -> list:
    return [v.strip() for v in text.strip().strip("{}").split(",") if v.strip()]


def _wavelengths(dataset) -> tuple:
    """(wavelengths in nm or None, why the file's wavelengths are not usable or None): from
    GDAL's band metadata (wavelength, wavelength_units: ENVI headers and GeoTIFFs alike), with
    an ENVI header's own units, which GDAL leaves out where they are not a length."""
    tags = [dataset.tags(b) for b in range(1, dataset.count + 1)]
    envi = dataset.tags(ns="ENVI")
    if not all("wavelength" in t for t in tags):
        if "wavelength" not in envi:
            return None, None
        tags = [{"wavelength": w} for w in _braced(envi["wavelength"])]
        if len(tags) != dataset.count:
            return None, f"its header lists {len(tags)} wavelengths for {dataset.count} bands"
    try:
        values = np.array([float(t["wavelength"]) for t in tags])
    except ValueError:
        return None, "its wavelengths are not numbers"
    units = {envi["wavelength_units"].strip()} if "wavelength_units" in envi else \
        {t.get("wavelength_units", "").strip() for t in tags}
    if units == {""}:  # no units given: micrometres below 30, as for other files
        return (values * 1000 if values.max() < 30 else values), None
    factor = UNITS_TO_NM.get(next(iter(units)).lower()) if len(units) == 1 else None
    if factor is None:
        return None, f"its wavelength units ({', '.join(sorted(units))}) are not a length dhif knows " \
                     "(nanometers, micrometers, millimeters)"
    return values * factor, None


def _units(dataset) -> tuple:
    """(the values' units, the scale factor of stored values) where the file names them."""
    envi = dataset.tags(ns="ENVI")
    units = dataset.units[0] or envi.get("data_units") or None
    factor = envi.get("reflectance_scale_factor")
    if factor is None and dataset.scales[0] != 1:
        factor = 1 / dataset.scales[0]
    return units, None if factor is None else float(factor)


def read_raster(path: Path) -> Raster:
    """An ENVI (given its header or its data file) or GeoTIFF raster, as stored."""
    import rasterio

    header = None
    if path.suffix.lower() in ENVI_SUFFIXES:
        try:
            header, path = envi_files(path)
        except FileNotFoundError:
            if not _is_erdas_imagine(path):
                raise
    try:
        with _quiet(), rasterio.open(path) as dataset:
            if header is not None:
                _check_envi_size(header, path, dataset)
            transform = tuple(dataset.transform)[:6]
            georeferenced = dataset.crs is not None or not dataset.transform.is_identity
            georeference = Georeference(dataset.crs.to_wkt() if dataset.crs else None, transform) \
                if georeferenced else None
            wavelengths, problem = _wavelengths(dataset)
            units, factor = _units(dataset)
            return Raster(dataset.read(), dataset.driver, georeference, dataset.nodata, wavelengths, problem, units,
                          factor)
    except rasterio.errors.RasterioError as error:
        raise ValueError(f"cannot read {path}: {error}") from error


def _output_path(path: Path, fmt: str) -> Path:
    return path.with_suffix(".img") if fmt == "envi" else path.with_suffix(".tif")


def raster_files(path: Path, fmt: str) -> tuple:
    """The files that writing `path` as `fmt` makes."""
    path = _output_path(Path(path), fmt)
    return (path, path.with_suffix(".hdr")) if fmt == "envi" else (path,)


def write_raster(path: Path, cube: np.ndarray, fmt: str, georeference: Georeference = None, nodata: float = None,
                 wavelengths=None, units: str = None, scale_factor: float = None) -> Path:
    """(C, H, W) written as an ENVI (BSQ, .img + .hdr) or GeoTIFF raster with its
    georeference, no-data value, wavelengths (nm), units and scale factor (stored value /
    physical value); written beside and renamed into place, so a reader never sees half a
    file. Returns the data file's path."""
    import rasterio
    from rasterio.transform import Affine

    final = _output_path(Path(path), fmt)
    staging = final.with_name(f".{final.stem}.partial{final.suffix}")
    profile = {"driver": WRITE_DRIVERS[fmt], "count": cube.shape[0], "height": cube.shape[1],
               "width": cube.shape[2], "dtype": cube.dtype.name, "nodata": nodata}
    if georeference is not None:
        profile.update(transform=Affine(*georeference.transform), crs=georeference.crs)
    with rasterio.Env(GDAL_PAM_ENABLED="NO"):  # no .aux.xml beside the result
        with rasterio.open(staging, "w", **profile) as dataset:
            dataset.write(cube)
            _write_metadata(dataset, fmt, wavelengths, units, scale_factor)
    if fmt == "envi":  # the header names its data file: the final one
        header = staging.with_suffix(".hdr")
        header.write_text(re.sub(r"description = \{[^}]*\}", f"description = {{{final.name}}}", header.read_text()))
    for made, kept in zip(raster_files(staging, fmt), raster_files(final, fmt)):
        made.replace(kept)
    return final


def _write_metadata(dataset, fmt: str, wavelengths, units: str, scale_factor: float):
    if wavelengths is not None:
        nm = [f"{float(w):g}" for w in wavelengths]
        dataset.descriptions = tuple(f"{w} nm" for w in nm)
        if fmt == "envi":
            dataset.update_tags(ns="ENVI", wavelength="{" + ", ".join(nm) + "}", wavelength_units="Nanometers")
        else:
            for band, w in enumerate(nm, start=1):
                dataset.update_tags(band, wavelength=w, wavelength_units="Nanometers")
    if units:
        dataset.units = (units,) * dataset.count
        if fmt == "envi":
            dataset.update_tags(ns="ENVI", data_units=units)
    if scale_factor:
        if fmt == "envi":
            dataset.update_tags(ns="ENVI", reflectance_scale_factor=f"{scale_factor:g}")
        else:  # GDAL's scale is the other way round: physical = stored x scale
            dataset.scales = (1 / scale_factor,) * dataset.count


def _crs_name(wkt: str) -> str:
    from rasterio.crs import CRS

    crs = CRS.from_wkt(wkt)
    return crs.to_string() if crs.to_epsg() else wkt.split('"')[1] if '"' in wkt else wkt[:40]


def check_registration(lr: Georeference, lr_size: tuple, msi: Georeference, msi_size: tuple, scale: int):
    """A one-line ValueError where two georeferenced rasters cannot be a pair at `scale`:
    different CRSs, pixel sizes whose ratio is not the scale, no overlap, or an offset of
    more than half an LR pixel. Nothing is checked where either has no georeference."""
    if lr is None or msi is None:
        return
    if lr.crs and msi.crs:
        from rasterio.crs import CRS

        if CRS.from_wkt(lr.crs) != CRS.from_wkt(msi.crs):
            raise ValueError(f"the LR-HSI is in {_crs_name(lr.crs)} and the HR-MSI in {_crs_name(msi.crs)}; "
                             "reproject one onto the other's CRS first (e.g. gdalwarp -t_srs)")
    lr_pixel, msi_pixel = lr.pixel_size(), msi.pixel_size()
    ratios = [a / b for a, b in zip(lr_pixel, msi_pixel)]
    if any(abs(r - scale) > 0.01 * scale for r in ratios):
        raise ValueError(f"the LR-HSI's pixels are {lr_pixel[0]:g} x {lr_pixel[1]:g} and the HR-MSI's "
                         f"{msi_pixel[0]:g} x {msi_pixel[1]:g} map units: x{ratios[0]:.3g}, not the pair's scale "
                         f"x{scale}; resample one of them")
    (l1, b1, r1, t1), (l2, b2, r2, t2) = lr.bounds(*lr_size), msi.bounds(*msi_size)
    if min(r1, r2) <= max(l1, l2) or min(t1, t2) <= max(b1, b2):
        raise ValueError(f"the LR-HSI ({l1:g}, {b1:g}) - ({r1:g}, {t1:g}) and the HR-MSI ({l2:g}, {b2:g}) - "
                         f"({r2:g}, {t2:g}) do not overlap: they are not images of one area")
    offset = max(abs(l1 - l2) / lr_pixel[0], abs(t1 - t2) / lr_pixel[1])
    if offset > 0.5:
        raise ValueError(f"the LR-HSI and the HR-MSI overlap but their corners are {offset:.3g} LR pixels apart; "
                         "crop both to the same area")
