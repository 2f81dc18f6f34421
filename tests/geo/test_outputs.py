"""Production outputs: Cloud-Optimized GeoTIFFs (layout, BigTIFF decision, float16, colour table and class names)
and GeoParquet embeddings."""

import json
import struct

import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio

from spectralgpt_hf.geo import bigtiff_needed, open_output, write_geotiff
from spectralgpt_hf.geo.cog import cog_layout_errors
from spectralgpt_hf.geo.writing import OVERVIEW_MAX_BANDS
from spectralgpt_hf.geo.geoparquet import write_embeddings_geoparquet

CRS = rasterio.crs.CRS.from_epsg(32633)
TRANSFORM = rasterio.Affine(80.0, 0.0, 600000.0, 0.0, -80.0, 100000.0)


def write(path, array, **options):
    count, height, width = array.shape
    with open_output(
        path, height=height, width=width, count=count, dtype=array.dtype, crs=CRS, transform=TRANSFORM, **options
    ) as writer:
        writer.write(array)
    return path


def test_float_output_is_a_valid_cog(tmp_path):
    values = np.random.default_rng(0).random((3, 1100, 900), dtype=np.float32)
    path = write(tmp_path / "scores.tif", values, nodata=float("nan"))
    assert cog_layout_errors(path) == []
    with rasterio.open(path) as result:
        assert result.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "3" and result.compression.name == "zstd"
        assert result.block_shapes[0] == (512, 512) and result.overviews(1) == [2, 4]
        np.testing.assert_array_equal(result.read(), values)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.tif"]  # the staging file is gone


def test_many_band_output_is_a_cog_without_overviews(tmp_path):
    values = np.random.default_rng(0).random((OVERVIEW_MAX_BANDS + 1, 600, 520), dtype=np.float32)
    path = write(tmp_path / "embeddings.tif", values)
    assert cog_layout_errors(path, require_overviews=False) == []
    assert cog_layout_errors(path) == ["the image is 520 x 600 px but has no overviews"]
    with rasterio.open(path) as result:
        assert result.overviews(1) == [] and result.block_shapes[0] == (128, 128)
        np.testing.assert_array_equal(result.read(), values)
    few = write(tmp_path / "scores.tif", values[:OVERVIEW_MAX_BANDS])
    with rasterio.open(few) as result:
        assert result.overviews(1) == [2] and result.block_shapes[0] == (512, 512)


def test_plain_geotiff_fails_the_cog_check(tmp_path):
    path = write_geotiff(tmp_path / "plain.tif", np.zeros((1, 1100, 900), np.uint8), CRS, TRANSFORM)
    errors = cog_layout_errors(path)
    assert "the image is 900 x 1100 px but has no overviews" in errors
    assert "GDAL does not report LAYOUT=COG in the IMAGE_STRUCTURE metadata" in errors
    assert cog_layout_errors(write(tmp_path / "tiled.tif", np.zeros((1, 600, 600), np.uint8), output_format="gtiff"))


def test_float16_halves_embeddings(tmp_path):
    # Whole 512 px blocks: GDAL pads partial edge blocks with whatever memory holds, which compresses differently
    # once the process keeps freed memory for reuse (keep_freed_memory_for_reuse), so sizes would vary.
    values = np.random.default_rng(0).standard_normal((8, 1024, 1024)).astype(np.float32)
    full = write(tmp_path / "full.tif", values)
    half = write(tmp_path / "half.tif", values, output_dtype="float16")
    assert cog_layout_errors(half) == []
    with rasterio.open(half) as result:
        # 16-bit floats: 11 significant bits (GDAL may round the last one differently from numpy)
        np.testing.assert_allclose(result.read(), values, rtol=2**-10, atol=1e-4)
    assert half.stat().st_size < 0.7 * full.stat().st_size  # random values: the mantissa hardly compresses
    with pytest.raises(ValueError, match="float16 output is for float outputs"):
        write(tmp_path / "classes.tif", np.zeros((1, 8, 8), np.uint8), output_dtype="float16")


def test_class_map_colour_table_and_class_names_round_trip(tmp_path):
    classes = np.random.default_rng(0).integers(0, 3, (1, 700, 700)).astype(np.uint8)
    classes[0, :10] = 255
    names = ["water", "forest", "urban"]
    path = write(tmp_path / "classes.tif", classes, nodata=255, class_names=names)
    assert cog_layout_errors(path) == []
    with rasterio.open(path) as result:
        assert json.loads(result.tags()["class_names"]) == names and result.nodata == 255
        colours = result.colormap(1)
        assert len({colours[index] for index in range(3)}) == 3 and colours[255] == (0, 0, 0, 0)
        np.testing.assert_array_equal(result.read(), classes)
        assert result.overviews(1) == [2]


def test_bigtiff_is_chosen_when_the_uncompressed_size_may_pass_4_gib(tmp_path):
    # one full 10980 px tile of 768-wide embeddings at 80 m: 1372 x 1372 x 768 float32 = 5.8 GB
    assert bigtiff_needed(1372, 1372, 768, np.float32)
    assert not bigtiff_needed(1372, 1372, 768, np.float16, overviews=False)  # 2.9 GB
    assert not bigtiff_needed(10980, 10980, 1, np.uint8)  # a class map of the tile: 120 MB
    assert bigtiff_needed(10980, 10980, 10, np.float32, overviews=False)
    assert not bigtiff_needed(1000, 1000, 1000, np.float32, overviews=False)  # exactly 4.0 GB: under 4 GiB

    def is_bigtiff(path):
        with open(path, "rb") as handle:
            return struct.unpack("<H", handle.read(4)[2:])[0] == 43

    assert not is_bigtiff(write(tmp_path / "small.tif", np.zeros((1, 8, 8), np.float32)))


def test_embeddings_as_geoparquet(tmp_path):
    embeddings = np.random.default_rng(0).standard_normal((4, 3, 5)).astype(np.float32)
    embeddings[:, 2, 4] = np.nan  # a patch without valid pixels
    tif = write(tmp_path / "embeddings.tif", embeddings, nodata=float("nan"), tags={"scene_id": "S2A_X"})
    path = write_embeddings_geoparquet(tif, tmp_path / "embeddings.parquet")
    table = pq.read_table(path)
    assert table.num_rows == 14 and table.column_names == ["scene_id", "row", "col", "embedding", "geometry"]
    assert set(table["scene_id"].to_pylist()) == {"S2A_X"}
    first = table.slice(0, 1).to_pylist()[0]
    np.testing.assert_array_equal(first["embedding"], embeddings[:, 0, 0])
    # GeoParquet metadata: version, primary column, WKB encoding, CRS as PROJJSON
    geo = json.loads(pq.read_schema(path).metadata[b"geo"])
    assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry"
    column = geo["columns"]["geometry"]
    assert column["encoding"] == "WKB" and column["geometry_types"] == ["Polygon"]
    assert column["crs"]["type"] == "ProjectedCRS" and column["crs"]["id"] == {"authority": "EPSG", "code": 32633}
    # WKB: little-endian polygon, one closed ring of five points around patch (row 0, col 0)
    wkb = first["geometry"]
    assert struct.unpack("<BIII", wkb[:13]) == (1, 3, 1, 5)
    points = np.frombuffer(wkb[13:], "<f8").reshape(5, 2)
    assert points.tolist() == [[600000, 100000], [600080, 100000], [600080, 99920], [600000, 99920], [600000, 100000]]
    last = table.slice(13, 1).to_pylist()[0]
    assert (last["row"], last["col"]) == (2, 3)


def test_geoparquet_embeddings_read_back_by_geopandas_and_duckdb(tmp_path):
    geopandas = pytest.importorskip("geopandas")
    duckdb = pytest.importorskip("duckdb")
    shapely = pytest.importorskip("shapely")
    embeddings = np.random.default_rng(1).standard_normal((6, 4, 3)).astype(np.float32)
    embeddings[:, 0, 1] = np.nan
    tif = write(tmp_path / "embeddings.tif", embeddings, nodata=float("nan"), tags={"scene_id": "S2B_T33UVP"})
    path = write_embeddings_geoparquet(tif, tmp_path / "embeddings.parquet")
    rows, cols = np.nonzero(~np.isnan(embeddings).all(axis=0))
    footprints = [
        shapely.box(600000 + 80 * col, 100000 - 80 * (row + 1), 600000 + 80 * (col + 1), 100000 - 80 * row)
        for row, col in zip(rows, cols)
    ]

    frame = geopandas.read_parquet(path)
    assert frame.crs.to_epsg() == 32633 and frame.geometry.name == "geometry"
    assert (frame["row"].tolist(), frame["col"].tolist()) == (rows.tolist(), cols.tolist())
    assert all(shape.equals(box) for shape, box in zip(frame.geometry, footprints))
    np.testing.assert_array_equal(np.stack(frame["embedding"].to_numpy()), embeddings[:, rows, cols].T)
    assert set(frame["scene_id"]) == {"S2B_T33UVP"}

    # DuckDB without its spatial extension: the rows, the `geo` key, and the column taken as a geometry in the CRS
    with duckdb.connect() as connection:
        query = f"SELECT scene_id, row, col, embedding, ST_AsText(geometry), typeof(geometry) FROM '{path}'"
        result = connection.sql(query + " ORDER BY row, col").fetchall()
        assert [(row, col) for _, row, col, *_ in result] == list(zip(rows.tolist(), cols.tolist()))
        np.testing.assert_array_equal([values for *_, values, _, _ in result], embeddings[:, rows, cols].T)
        assert [shapely.from_wkt(text).equals(box) for (*_, text, _), box in zip(result, footprints)] == [True] * len(rows)
        assert {scene for scene, *_ in result} == {"S2B_T33UVP"}
        assert all(kind.startswith("GEOMETRY(") and '"code":32633' in kind for *_, kind in result)
        [(geo,)] = connection.sql(f"SELECT value FROM parquet_kv_metadata('{path}') WHERE key = 'geo'").fetchall()
        assert json.loads(geo)["columns"]["geometry"]["encoding"] == "WKB"
        connection.sql("SET enable_geoparquet_conversion = false")  # the raw column: WKB bytes
        wkb = [value for (value,) in connection.sql(f"SELECT geometry FROM '{path}' ORDER BY row, col").fetchall()]
        assert [shapely.from_wkb(value).equals(box) for value, box in zip(wkb, footprints)] == [True] * len(wkb)
