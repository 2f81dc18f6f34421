"""Fixtures of the dataset tests: small copies of the real folder layouts (tests/layouts.py), built once."""

import pytest

import layouts


@pytest.fixture(scope="session")
def eurosat_root(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("eurosat")
    layouts.write_eurosat(data_dir, root)
    (root / "eurosat-train.txt").write_text("AnnualCrop_1.jpg\nSeaLake_3000.jpg\n")
    return root


@pytest.fixture(scope="session")
def bigearthnet_root(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("bigearthnet")
    patch = layouts.write_bigearthnet(data_dir, root)
    return root, patch


@pytest.fixture(scope="session")
def segmunich_root(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("segmunich")
    layouts.write_segmunich(data_dir, root)
    return root


@pytest.fixture(scope="session")
def oscd_root(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("oscd")
    layouts.write_oscd(data_dir, root)
    return root
