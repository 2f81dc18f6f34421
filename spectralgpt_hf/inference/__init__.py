"""Whole-scene inference: a model over a Sentinel-2 scene in overlapping tiles, written on the scene's grid."""

from .scene import embed_scene, predict_scene

__all__ = ["embed_scene", "predict_scene"]
