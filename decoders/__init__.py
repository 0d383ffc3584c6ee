"""Heatmap decoding, flip test, back-projection to the image, OKS-NMS and rescoring."""
from decoders.back_project import to_image_coords
from decoders.flip import flip_back, fuse_flip
from decoders.heatmap_decode import decode_heatmaps, get_max_preds
from decoders.oks_nms import oks_iou, oks_nms, rescore

__all__ = [
    "decode_heatmaps", "get_max_preds", "to_image_coords", "flip_back", "fuse_flip",
    "oks_iou", "oks_nms", "rescore",
]
