"""``build_codec(cfg)``: the codec of the model family that ``model.type`` names.

A codec owns everything that differs between the two families on either side of the network:
``encode(joints, joints_vis)`` (called by the dataset, which knows nothing of heatmaps),
``batch_targets(target, weight)`` (the training loop's last step from a batch of ``encode`` outputs to the
loss's targets, on the training device: ``data.device_targets`` draws heatmaps there),
``decode(outputs)`` -> crop-grid coordinates + scores, ``fuse_flip(outputs, outputs_flipped)``,
``grid_wh`` for back-projection, and ``family`` (``heatmap`` or ``regression``).
"""
from datasets.keypoints import KeypointMeta
from processors.config import MODEL_FAMILIES

from .heatmap_codec import HeatmapCodec
from .regression_codec import RegressionCodec


def _heatmap(cfg, keypoints):
    d = cfg.data
    return HeatmapCodec(d.input_wh, d.heatmap_wh, d.sigma, keypoints.flip_pairs, method=cfg.decoder.type,
                        kernel=cfg.decoder.kernel, unbiased=d.unbiased, flip_shift=cfg.decoder.flip_shift,
                        device_targets=d.device_targets)


def _regression(cfg, keypoints):
    return RegressionCodec(cfg.data.input_wh, keypoints.flip_pairs, flip_shift=cfg.decoder.flip_shift,
                           origin=cfg.decoder.coord_origin)


# model family (MODEL_FAMILIES[model.type]) -> codec constructor
CODECS = {"heatmap": _heatmap, "regression": _regression}


def build_codec(cfg, keypoints=None):
    """Codec for a full ``Config``; ``keypoints`` defaults to ``KeypointMeta.from_config(cfg.keypoints)``."""
    keypoints = keypoints or KeypointMeta.from_config(cfg.keypoints)
    return CODECS[MODEL_FAMILIES[cfg.model.type]](cfg, keypoints)
