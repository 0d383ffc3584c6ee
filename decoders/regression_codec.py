"""Regression codec (RLE): joint coordinates normalised to the crop in, coordinates and sigmas out.

As the official RLE code: a joint at crop pixel ``(x, y)`` of a ``W x H`` input is the target
``(x / W - 0.5, y / H - 0.5)`` (``origin="center"``; mmpose's ``"corner"`` is ``(x / W, y / H)``); the
model predicts such coordinates and a sigma per coordinate (after a sigmoid), and a joint's score is ``1 - mean(sigma)``. ``grid_wh`` is the input size, so the
decoded crop pixels go back to the image through the same ``decoders.to_image_coords`` as heatmaps.

Flip test (official ``flip_coord``): the mirrored input's x becomes ``-x - 1/W`` with
``flip_shift`` (the exact mirror of pixel ``x`` to ``W - 1 - x``, the official default) or ``-x``
without (``1 - x - 1/W`` or ``1 - x`` with the corner origin); left/right joints and their sigmas are
swapped, then both outputs are averaged. (The official no-shift branch subtracts one *heatmap* pixel, ``1 / (W / 4)``; TopPose does not copy it.)
"""
import numpy as np
import torch

from datasets.coco_meta import flip_permutation


class RegressionCodec:
    family = "regression"

    def __init__(self, input_wh, flip_pairs, flip_shift=True, origin="center"):
        """``input_wh = (width, height)`` of the network input; ``flip_pairs`` [(left, right)];
        ``origin``: ``center`` or ``corner`` (see the module docstring)."""
        if origin not in ("center", "corner"):
            raise ValueError(f"origin must be 'center' or 'corner', got {origin!r}")
        self.input_wh = self.grid_wh = tuple(input_wh)
        self.flip_pairs, self.flip_shift = tuple(flip_pairs), flip_shift
        self.offset = 0.5 if origin == "center" else 0.0

    def encode(self, joints, joints_vis):
        """Targets of one crop: ``joints`` (J, 2) in input-crop pixels, ``joints_vis`` (J,) 0/1.

        Returns float32 numpy ``(coords [J, 2], weights [J, 1])``; a joint outside the crop
        (``[0, W-1] x [0, H-1]``) or not labelled weighs 0.
        """
        size = np.asarray(self.input_wh, np.float64)
        xy = np.asarray(joints, np.float64)[:, :2]
        inside = np.all((xy >= 0) & (xy <= size - 1), axis=1)
        weights = np.where(inside, np.asarray(joints_vis, np.float64).reshape(-1), 0.0)
        return (xy / size - self.offset).astype(np.float32), weights[:, None].astype(np.float32)

    def batch_targets(self, target, weight):
        """The loss's targets of a batch of ``encode`` outputs: the batch itself (coordinates are small)."""
        return target, weight

    def decode(self, outputs):
        """``{"coords", "sigma"}`` [B, J, 2] -> ``(coords [B, J, 2] input pixels, scores [B, J, 1])``."""
        size = torch.as_tensor(self.input_wh, dtype=torch.float32, device=outputs["coords"].device)
        coords = (outputs["coords"].float() + self.offset) * size
        scores = 1.0 - outputs["sigma"].float().mean(dim=2, keepdim=True)
        return coords, scores

    def fuse_flip(self, outputs, outputs_flipped):
        """Average ``outputs`` with the mirrored-back ``outputs_flipped`` (coords and sigmas)."""
        perm = torch.as_tensor(flip_permutation(outputs["coords"].shape[1], self.flip_pairs),
                               device=outputs["coords"].device)
        coords = outputs_flipped["coords"].float()[:, perm].clone()
        shift = 1.0 / self.input_wh[0] if self.flip_shift else 0.0
        coords[..., 0] = 1 - 2 * self.offset - coords[..., 0] - shift
        sigma = outputs_flipped["sigma"].float()[:, perm]
        return {"coords": (outputs["coords"].float() + coords) * 0.5,
                "sigma": (outputs["sigma"].float() + sigma) * 0.5}

    def target_joints(self, coords, weights):
        """Joints a batch of targets encodes, for pictures: [B, J, 3] (x, y in input pixels, weight)."""
        size = torch.as_tensor(self.input_wh, dtype=torch.float32)
        return torch.cat([(coords + self.offset) * size, weights], dim=-1)
