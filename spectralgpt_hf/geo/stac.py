# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Sentinel-2 STAC Items (Earth Search, Planetary Computer, your own): one asset per band, chosen by its `eo:bands`
name or common name (or, failing those, by its key: `B02`, `blue`), read by window wherever its href points.

Radiometry comes from the item: an asset's `raster:bands` scale and offset (reflectance = DN x scale + offset)
when given; otherwise an offset of -1000 for `s2:processing_baseline` 04.00 and later, unless the catalogue says it
removed it already (`earthsearch:boa_offset_applied`); otherwise none.
"""

from __future__ import annotations

import contextlib

from .bands import canonical_band_name
from .sources import QUANTIFICATION_SCALE, SourceFiles, gdal_path, is_remote

BASELINE_04_OFFSET = -1000.0


def _asset_band(key: str, asset) -> str | None:
    """The Sentinel-2 band a single-band asset holds, or None (multi-band, SCL, metadata, previews)."""
    bands = asset.extra_fields.get("eo:bands") or asset.extra_fields.get("bands")
    candidates = []
    if bands and len(bands) == 1:
        band = bands[0]
        candidates = [band.get("name"), band.get("common_name"), band.get("eo:common_name")]
    elif not bands:
        candidates = [key.removesuffix("-jp2")]
    for candidate in candidates:
        if candidate:
            with contextlib.suppress(ValueError):
                return canonical_band_name(candidate)
    return None


def _is_scl(key: str, asset) -> bool:
    bands = asset.extra_fields.get("eo:bands") or asset.extra_fields.get("bands") or []
    names = {key.removesuffix("-jp2").lower(), *(str(band.get("name", "")).lower() for band in bands)}
    return "scl" in names


def _preference(asset) -> int:
    """Lower is better: Cloud-Optimized GeoTIFFs before JPEG 2000 and others."""
    return 0 if "tiff" in (asset.media_type or "").lower() else 1


def _pick(assets: list[tuple[str, object]], what: str, item_source: str) -> tuple[str, object]:
    best = min(_preference(asset) for _, asset in assets)
    chosen = [(key, asset) for key, asset in assets if _preference(asset) == best]
    if len(chosen) > 1:
        keys = ", ".join(key for key, _ in chosen)
        raise ValueError(f"Several assets of the STAC Item {item_source} hold {what} ({keys}); keep one.")
    return chosen[0]


def _radiometry(item, asset) -> tuple[float, float]:
    """(quantification value, offset in stored units) of one band asset."""
    raster = (asset.extra_fields.get("raster:bands") or [{}])[0]
    scale, offset = raster.get("scale"), raster.get("offset")
    if scale:
        return 1.0 / scale, (offset or 0.0) / scale
    if offset:
        return QUANTIFICATION_SCALE, offset
    properties = item.properties
    baseline = properties.get("s2:processing_baseline")
    if baseline and not properties.get("earthsearch:boa_offset_applied"):
        with contextlib.suppress(ValueError):
            if float(baseline) >= 4.0:
                return QUANTIFICATION_SCALE, BASELINE_04_OFFSET
    return QUANTIFICATION_SCALE, 0.0


def describe_stac_item(source: str) -> SourceFiles:
    """The band assets, SCL, radiometry and nodata of a STAC Item JSON (a local path or URL)."""
    import pystac

    try:
        item = pystac.Item.from_file(source)
    except FileNotFoundError:
        raise FileNotFoundError(f"No STAC Item at {source}.") from None
    except Exception as error:  # pystac raises many kinds: JSON, HTTP, schema
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"Cannot read the STAC Item {source}: {message}") from None
    by_band: dict[str, list] = {}
    scl_assets = []
    for key, asset in item.assets.items():
        roles = set(asset.roles or ())
        if roles & {"thumbnail", "overview", "metadata"}:
            continue
        band = _asset_band(key, asset)
        if band is not None:
            by_band.setdefault(band, []).append((key, asset))
        elif _is_scl(key, asset):
            scl_assets.append((key, asset))
    if not by_band:
        raise ValueError(
            f"The STAC Item {source} has no single-band Sentinel-2 assets (by eo:bands name or common name, or by "
            f"asset key); its assets: {', '.join(item.assets) or 'none'}."
        )
    band_files, offsets, quantifications, nodata = {}, {}, set(), None
    for band, assets in by_band.items():
        _, asset = _pick(assets, f"band {band}", source)
        band_files[band] = _href(asset)
        quantification, offsets[band] = _radiometry(item, asset)
        quantifications.add(quantification)
        raster = (asset.extra_fields.get("raster:bands") or [{}])[0]
        nodata = raster.get("nodata", nodata)
    if len(quantifications) > 1:
        raise ValueError(f"The bands of the STAC Item {source} have different scales: {sorted(quantifications)}.")
    scl = _href(_pick(scl_assets, "the scene classification", source)[1]) if scl_assets else None
    return SourceFiles(
        name=source,
        scene_id=item.id,
        band_files=band_files,
        offsets=offsets,
        quantification=quantifications.pop(),
        nodata=nodata,
        scl=scl,
    )


def _href(asset) -> str:
    href = asset.get_absolute_href() or asset.href
    return gdal_path(href) if is_remote(href) else href
