"""MobileNetV2 backbones (torchvision's architecture and names, so its ImageNet checkpoint loads as it is).

``features`` is torchvision's ``mobilenet_v2(width_mult=w).features``: a 3x3 stride-2 stem, 17 inverted
residual blocks (ReLU6) and a 1x1 conv to 1280 channels; the output is the stride-32 map of that conv.

``foreign_key`` maps the names of mmpose-style checkpoints (the MMPose_Clean layout: ``conv1.conv``,
``block_k.n.{conv,bn,dw_conv,dw_bn,pw_conv,pw_bn}``, ``conv2.bn``; block ``k`` is row ``k`` of the
architecture table, ``n`` counts from 1) to these names.
"""
import re

import torch.nn as nn
import torchvision

MOBILENETS = {"mobilenetv2_050": 0.5, "mobilenetv2_075": 0.75, "mobilenetv2_100": 1.0}
# Blocks per row of MobileNetV2's architecture table (t, c, n, s): the n column.
ROW_BLOCKS = (1, 2, 3, 4, 3, 3, 1)
# mmpose part -> torchvision position inside InvertedResidual.conv, with and without the expansion conv.
EXPAND_PARTS = {"conv": "0.0", "bn": "0.1", "dw_conv": "1.0", "dw_bn": "1.1", "pw_conv": "2", "pw_bn": "3"}
PLAIN_PARTS = {"dw_conv": "0.0", "dw_bn": "0.1", "pw_conv": "1", "pw_bn": "2"}
BLOCK_KEY = re.compile(r"block_(\d+)\.(\d+)\.(conv|bn|dw_conv|dw_bn|pw_conv|pw_bn)\.(.+)")


class MobileNetV2Backbone(nn.Module):
    """MobileNetV2 without its classifier: image -> stride-32 map of ``out_channels`` (1280) channels."""

    stride = 32

    def __init__(self, name):
        super().__init__()
        if name not in MOBILENETS:
            raise ValueError(f"unknown MobileNetV2 '{name}'; choose one of {', '.join(MOBILENETS)}")
        net = torchvision.models.mobilenet_v2(weights=None, width_mult=MOBILENETS[name])
        self.features, self.out_channels = net.features, net.last_channel

    def forward(self, x):
        return self.features(x)

    def foreign_key(self, key):
        """torchvision name of an mmpose-style backbone tensor name (other names come back unchanged)."""
        last = len(self.features) - 1
        for stem, index in (("conv1.", 0), ("conv2.", last)):
            if key.startswith(stem):
                return f"features.{index}." + key[len(stem):].replace("conv.", "0.", 1).replace("bn.", "1.", 1)
        match = BLOCK_KEY.fullmatch(key)
        if not match:
            return key
        row, n, part, leaf = int(match[1]), int(match[2]), match[3], match[4]
        if row >= len(ROW_BLOCKS) or not 1 <= n <= ROW_BLOCKS[row]:
            return key
        index = 1 + sum(ROW_BLOCKS[:row]) + n - 1
        parts = EXPAND_PARTS if len(self.features[index].conv) == 4 else PLAIN_PARTS
        return f"features.{index}.conv.{parts[part]}.{leaf}" if part in parts else key
