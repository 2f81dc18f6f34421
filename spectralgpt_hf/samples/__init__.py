"""Real Sentinel-2 data shipped with the package, so that the demo and the tests run with no download.

One SSL4EO-S12 L2A location (id 0000200, tile T43RCP) on two dates, 2020-06-04 and 2020-08-13: per date, 12
single-band GeoTIFFs named B1..B12 and B8A (264 x 264 px at 10 m, 132 x 132 at 20 m, 44 x 44 at 60 m, uint16 L2A
reflectance x 10000) and the product's metadata.json. Source: SSL4EO-S12 (CC-BY-4.0), unmodified files; contains
modified Copernicus Sentinel data. See the NOTICE file of the project for attribution.
"""

from importlib.resources import as_file, files
from pathlib import Path

__all__ = ["SSL4EO_LOCATION", "sample_root", "sample_scene", "sample_scene_pair"]

SSL4EO_LOCATION = "ssl4eo_s12_l2a/0000200"


def sample_root() -> Path:
    """The folder holding the embedded samples, in the layout of their datasets (`ssl4eo_s12_l2a/<id>/<date>/`)."""
    # The package is installed as plain files (never zipped), so the folder is a real path.
    with as_file(files(__name__)) as root:
        return Path(root)


def sample_scene_pair() -> tuple[Path, Path]:
    """The two date folders of the SSL4EO-S12 location, earlier date first."""
    location = sample_root() / SSL4EO_LOCATION
    dates = sorted(path for path in location.iterdir() if path.is_dir())
    if len(dates) != 2:
        raise FileNotFoundError(f"the embedded SSL4EO-S12 sample is incomplete: {location}")
    return dates[0], dates[1]


def sample_scene() -> Path:
    """The first date folder of the SSL4EO-S12 location: a real 264 x 264 px scene, one GeoTIFF per band."""
    return sample_scene_pair()[0]
