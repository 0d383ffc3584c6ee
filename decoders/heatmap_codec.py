"""Heatmap codec: Gaussian heatmap targets in, heatmaps out (SimpleBaseline / HRNet / DarkPose).

``encode`` turns one crop's joints into ``(heatmaps [J, h, w], weights [J, 1])`` (HRNet
targets, or DarkPose's sub-pixel ones with ``unbiased``); with ``device_targets`` it only passes the joints
on (``(joints [J, 2] float64, visibility [J, 1])``: 0.4 KB instead of 209 KB of maps at 64x48) and
``batch_targets`` draws the same heatmaps for the whole batch on the training device; ``decode`` turns a
batch of heatmaps into heatmap-pixel coordinates and scores (``basic`` or DARK ``gauss_taylor``);
``fuse_flip`` averages the output of an image with the flipped-back output of its mirror image. ``grid_wh``
is the heatmap size that ``decoders.to_image_coords`` needs to bring the coordinates back to the image.
"""
import numpy as np
import torch

from datasets.targets import (batch_heatmaps, batch_heatmaps_from_hm_coords, generate_heatmaps,
                             generate_heatmaps_from_hm_coords)

from .flip import fuse_flip
from .heatmap_decode import decode_heatmaps


class HeatmapCodec:
    family = "heatmap"

    def __init__(self, input_wh, heatmap_wh, sigma, flip_pairs, method="gauss_taylor", kernel=11,
                 unbiased=False, flip_shift=True, device_targets=False):
        """Sizes are ``(width, height)``; ``sigma`` in heatmap pixels; ``flip_pairs`` [(left, right)];
        ``device_targets``: ``encode`` defers the heatmaps to ``batch_targets`` (``data.device_targets``)."""
        self.input_wh, self.grid_wh = tuple(input_wh), tuple(heatmap_wh)
        self.sigma, self.flip_pairs = float(sigma), tuple(flip_pairs)
        self.method, self.kernel = method, kernel
        self.unbiased, self.flip_shift, self.device_targets = unbiased, flip_shift, device_targets

    def encode(self, joints, joints_vis):
        """Targets of one crop: ``joints`` (J, 2) in input-crop pixels, ``joints_vis`` (J,) 0/1.

        HRNet: a 3-sigma window on the joint rounded to the nearest heatmap pixel. ``unbiased``
        (DarkPose): a Gaussian on the sub-pixel joint, mapped to the heatmap as DarkPose's own
        heatmap affine does: about the centres ``((W-1)/2, (H-1)/2)``, both axes scaled by
        ``(w - 1) / (W - 1)`` (widths; the box's width fixes the scale). Returns float32 numpy
        ``(heatmaps [J, h, w], weights [J, 1])``; with ``device_targets`` the joints and visibilities that
        ``batch_targets`` turns into them: ``(joints [J, 2] float64, visibility [J, 1] float32)``.
        """
        if self.device_targets:
            vis = np.asarray(joints_vis, np.float32).reshape(len(joints), -1)[:, :1]
            return np.asarray(joints, np.float64)[:, :2].copy(), vis
        if self.unbiased:
            return generate_heatmaps_from_hm_coords(self._unbiased_hm_coords(joints[:, :2]), joints_vis,
                                                    self.grid_wh, self.sigma)
        return generate_heatmaps(joints, joints_vis, self.input_wh, self.grid_wh, self.sigma)

    def batch_targets(self, target, weight):
        """The loss's targets of a batch of what ``encode`` returned, on its device: the batch itself, or
        with ``device_targets`` the heatmaps ``encode`` would have made, drawn here ([B, J, h, w], [B, J, 1])."""
        if not self.device_targets:
            return target, weight
        if self.unbiased:
            return batch_heatmaps_from_hm_coords(self._unbiased_hm_coords(target), weight, self.grid_wh, self.sigma)
        return batch_heatmaps(target, weight, self.input_wh, self.grid_wh, self.sigma)

    def _unbiased_hm_coords(self, xy):
        """DarkPose's heatmap affine of crop-pixel joints ``xy`` [..., 2] (numpy or torch float64)."""
        (in_w, in_h), (hm_w, hm_h) = self.input_wh, self.grid_wh
        centres = [(in_w - 1) / 2, (in_h - 1) / 2], [(hm_w - 1) / 2, (hm_h - 1) / 2]
        c_in, c_hm = (xy.new_tensor(c) if torch.is_tensor(xy) else np.asarray(c) for c in centres)
        return (xy - c_in) * ((hm_w - 1) / (in_w - 1)) + c_hm

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
