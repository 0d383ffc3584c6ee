"""``Preprocess``: what a model expects of its input, from a person box to the network's tensor.

One object, built from the YAML ``data`` section, used by the dataset (training and evaluation crops)
and by the ``Predictor`` (any image and box), so both give the network the same input:

- box -> ``(center, scale)``: the aspect ratio (default: the input's width / height), the padding
  factor (1.25) and the box-centre rule (HRNet ``x + w/2`` or DarkPose ``x + (w-1)/2``, ``unbiased``);
- the crop warp (``warp``): ``hrnet`` (the reference's ``get_affine_transform``), ``dark``
  (DarkPose's unbiased affine) or ``udp`` (UDP / PaddleDetection / mmpose ``use_udp``: the padded box
  ``[c - s/2, c + s/2]`` maps onto ``[0, W - 1]``);
- normalisation of the uint8 crop: ``(pixel - mean) / std`` per channel in 0..255 units, in the colour
  order the network was trained with (``rgb`` or ``bgr``).
"""
import cv2
import torch

from .transforms import box_to_center_scale, get_affine_transform, udp_affine_transform

WARPS = ("hrnet", "dark", "udp")
IMAGENET_MEAN_255 = (123.675, 116.28, 103.53)
IMAGENET_STD_255 = (58.395, 57.12, 57.375)


class Preprocess:
    """Box -> crop -> network input for one model.

    ``input_wh`` = network input (width, height); ``aspect_ratio`` (width / height of the padded box,
    0 = the input's); ``padding`` multiplies the box; ``unbiased`` picks DarkPose's box centre;
    ``warp`` one of ``WARPS``; ``mean`` / ``std`` per channel in 0..255 units, in the order of
    ``channel_order`` (``rgb`` or ``bgr``, the order the network sees).
    """

    def __init__(self, input_wh, aspect_ratio=0.0, padding=1.25, unbiased=False, warp="hrnet",
                 mean=IMAGENET_MEAN_255, std=IMAGENET_STD_255, channel_order="rgb"):
        if warp not in WARPS:
            raise ValueError(f"unknown warp '{warp}'; choose one of {', '.join(WARPS)}")
        if channel_order not in ("rgb", "bgr"):
            raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
        self.input_wh = tuple(int(v) for v in input_wh)
        self.aspect_ratio = float(aspect_ratio) or self.input_wh[0] / self.input_wh[1]
        self.padding, self.unbiased, self.warp = float(padding), unbiased, warp
        self.mean, self.std = tuple(map(float, mean)), tuple(map(float, std))
        self.channel_order = channel_order

    @classmethod
    def from_config(cls, data_cfg):
        """From the YAML ``data`` section (``data.warp`` already resolved by the config)."""
        d = data_cfg
        return cls(d.input_wh, d.aspect_ratio, d.padding, d.unbiased, d.warp, d.mean, d.std, d.channel_order)

    def center_scale(self, box_xywh):
        """``(center, scale)`` float32 (2,) of a box ``[x, y, w, h]`` in image pixels."""
        return box_to_center_scale(box_xywh, self.aspect_ratio, padding=self.padding, unbiased=self.unbiased)

    def transform(self, center, scale, rot=0.0):
        """2x3 affine matrix from the image to the input crop (rotation ``rot`` in degrees)."""
        if self.warp == "udp":
            return udp_affine_transform(center, scale, rot, self.input_wh)
        return get_affine_transform(center, scale, rot, self.input_wh, unbiased=self.warp == "dark")

    def crop(self, image, center, scale, rot=0.0):
        """The input crop of ``image`` (H x W x C uint8): bilinear warp, zero border."""
        return cv2.warpAffine(image, self.transform(center, scale, rot), self.input_wh, flags=cv2.INTER_LINEAR)

    def normalize(self, images):
        """uint8 RGB batches [B, 3, H, W] (as the dataset yields them) -> float32 network input.

        Done on the training device: uint8 crops cross the DataLoader's process boundary at a quarter
        of the float32 size, which is what limits loading with many workers.
        """
        if self.channel_order == "bgr":
            images = images.flip(1)
        # In 0..1 units: the ImageNet default is then bit for bit the reference's (x / 255 - 0.485) / 0.229.
        mean = torch.tensor([m / 255 for m in self.mean], device=images.device).view(1, 3, 1, 1)
        std = torch.tensor([s / 255 for s in self.std], device=images.device).view(1, 3, 1, 1)
        return (images.float() / 255 - mean) / std

