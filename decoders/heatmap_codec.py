"""Heatmap codec: Gaussian heatmap targets in, heatmaps out (SimpleBaseline / HRNet / DarkPose).

``encode`` turns one crop's joints into ``(heatmaps [J, h, w], weights [J, 1])`` (HRNet
targets, or DarkPose's sub-pixel ones with ``unbiased``); ``decode`` turns a batch of heatmaps into
heatmap-pixel coordinates and scores (``basic`` or DARK ``gauss_taylor``); ``fuse_flip`` averages the
output of an image with the flipped-back output of its mirror image. ``grid_wh`` is the heatmap size
that ``decoders.to_image_coords`` needs to bring the coordinates back to the image.
"""
import torch

from datasets.targets import generate_heatmaps, generate_heatmaps_from_hm_coords

from .flip import fuse_flip
from .heatmap_decode import decode_heatmaps


class HeatmapCodec:
    family = "heatmap"

    def __init__(self, input_wh, heatmap_wh, sigma, flip_pairs, method="gauss_taylor", kernel=11,
                 unbiased=False, flip_shift=True):
        """Sizes are ``(width, height)``; ``sigma`` in heatmap pixels; ``flip_pairs`` [(left, right)]."""
        self.input_wh, self.grid_wh = tuple(input_wh), tuple(heatmap_wh)
        self.sigma, self.flip_pairs = float(sigma), tuple(flip_pairs)
        self.method, self.kernel = method, kernel
        self.unbiased, self.flip_shift = unbiased, flip_shift

    def encode(self, joints, joints_vis):
        """Targets of one crop: ``joints`` (J, 2) in input-crop pixels, ``joints_vis`` (J,) 0/1.

        HRNet: a 3-sigma window on the joint rounded to the nearest heatmap pixel. ``unbiased``
        (DarkPose): a Gaussian on the sub-pixel joint, mapped to the heatmap as DarkPose's own
        heatmap affine does: about the centres ``((W-1)/2, (H-1)/2)``, both axes scaled by
        ``(w - 1) / (W - 1)`` (widths; the box's width fixes the scale). Returns float32 numpy
        ``(heatmaps [J, h, w], weights [J, 1])``.
        """
        if self.unbiased:
            (in_w, in_h), (hm_w, hm_h) = self.input_wh, self.grid_wh
            k = (hm_w - 1) / (in_w - 1)
            xy = (joints[:, :2] - [(in_w - 1) / 2, (in_h - 1) / 2]) * k + [(hm_w - 1) / 2, (hm_h - 1) / 2]
            return generate_heatmaps_from_hm_coords(xy, joints_vis, self.grid_wh, self.sigma)
        return generate_heatmaps(joints, joints_vis, self.input_wh, self.grid_wh, self.sigma)

    def decode(self, outputs):
        """Heatmaps [B, J, h, w] -> ``(coords [B, J, 2] heatmap pixels, scores [B, J, 1])``, float32 torch."""
        return decode_heatmaps(outputs.float(), method=self.method, kernel=self.kernel)

    def fuse_flip(self, outputs, outputs_flipped):
        """Average with the flipped-back heatmaps of the mirrored input (HRNet's flip test)."""
        return fuse_flip(outputs.float(), outputs_flipped.float(), self.flip_pairs, shift=self.flip_shift)

    def target_joints(self, heatmaps, weights):
        """Joints a batch of targets encodes, for pictures: [B, J, 3] (x, y in input pixels, weight)."""
        b, j, h, w = heatmaps.shape
        flat = heatmaps.reshape(b, j, -1).argmax(-1)
        stride = self.input_wh[0] / w
        return torch.stack([(flat % w) * stride, (flat // w) * stride, weights[..., 0]], dim=-1)
