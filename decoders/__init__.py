"""Codecs (one per model family), heatmap decoding, flip test, back-projection, OKS-NMS and rescoring."""
from decoders.back_project import to_image_coords
from decoders.codec import build_codec
from decoders.flip import flip_back, fuse_flip
from decoders.heatmap_codec import HeatmapCodec
from decoders.heatmap_decode import decode_heatmaps, get_max_preds
from decoders.oks_nms import oks_iou, oks_nms, rescore
from decoders.regression_codec import RegressionCodec

__all__ = [
    "build_codec", "HeatmapCodec", "RegressionCodec",
    "decode_heatmaps", "get_max_preds", "to_image_coords", "flip_back", "fuse_flip",
    "oks_iou", "oks_nms", "rescore",
]
