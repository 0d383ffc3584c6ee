"""Lite-HRNet "wider_naive" backbone of PP-TinyPose (PaddleDetection), with its iterative head.

A ShuffleNet-style stem (stride 4) feeds three stages of parallel branches ([40, 80] -> [40, 80, 160] ->
[40, 80, 160, 320] channels at strides 4..32). Each module runs two stride-1 shuffle units per branch
(split in halves, 1x1 / depthwise 3x3 / 1x1 on the second half, concat, channel shuffle) and then fuses
the branches. The fusion keeps a quirk of PaddleDetection's in-place addition:
y0 = 2*out0 + sum_{j>0} f0j(outj) and, for i > 0, yi = 2*fi0(y0) + outi + sum_{j != 0, i} fij(outj), with
y0 taken before its ReLU; branch i outputs ReLU(yi). The iterative head walks from the lowest to the
highest resolution, adding the bilinearly upsampled (align_corners) previous result before a depthwise +
pointwise projection; the forward returns its 40-channel stride-4 map.

Module names are PaddleDetection's (``stem.conv1.conv``, ``transition0.0.0``,
``stage1.0.layers.2.0.branch2.1.norm``, ``head_layer.projects.3.pointwise_conv``, ...), so the ``backbone.*``
tensors of the converted PP-TinyPose weights (``tinypose_*_from_ir.pth``) load with ``strict=True``.
"""
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from .weight_init import init_pose_weights

LITEHRNETS = {
    "litehrnet_wider_naive": {
        "stem_channels": 32,
        "num_modules": (2, 4, 2),
        "num_blocks": (2, 2, 2),
        "num_channels": ((40, 80), (40, 80, 160), (40, 80, 160, 320)),
    },
}


def _conv_norm(cin, cout, kernel=1, stride=1, groups=1, relu=False):
    """Conv (no bias) + BN [+ ReLU] named ``conv`` / ``norm`` (PaddleDetection's ConvNormLayer)."""
    layers = OrderedDict(conv=nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                         norm=nn.BatchNorm2d(cout))
    if relu:
        layers["act"] = nn.ReLU()
    return nn.Sequential(layers)


def _dw_pw(cin, cout, stride, relu=True):
    """Depthwise 3x3 + BN + 1x1 + BN [+ ReLU], numbered 0..4 (transitions and fusion downsampling)."""
    layers = [nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
              nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU()) if relu else nn.Sequential(*layers)


def _cat_shuffle(x1, x2):
    return F.channel_shuffle(torch.cat([x1, x2], dim=1), 2)


class Stem(nn.Module):
    """3x3 stride-2 conv, then a stride-2 shuffle block: total stride 4."""

    def __init__(self, cin, channels):
        super().__init__()
        half = channels // 2
        self.conv1 = _conv_norm(cin, channels, 3, 2, relu=True)
        self.branch1 = nn.Sequential(_conv_norm(half, half, 3, 2, groups=half),
                                     _conv_norm(half, half, relu=True))
        self.expand_conv = _conv_norm(half, channels, relu=True)
        self.depthwise_conv = _conv_norm(channels, channels, 3, 2, groups=channels)
        self.linear_conv = _conv_norm(channels, half, relu=True)

    def forward(self, x):
        x1, x2 = self.conv1(x).chunk(2, dim=1)
        return _cat_shuffle(self.branch1(x1), self.linear_conv(self.depthwise_conv(self.expand_conv(x2))))


class ShuffleUnit(nn.Module):
    """Stride-1 ShuffleNetV2 unit: keep the first half, transform the second, concat, shuffle."""

    def __init__(self, channels):
        super().__init__()
        half = channels // 2
        self.branch2 = nn.Sequential(_conv_norm(half, half, relu=True),
                                     _conv_norm(half, half, 3, groups=half),
                                     _conv_norm(half, half, relu=True))

    def forward(self, x):
        x1, x2 = x.chunk(2, dim=1)
        return _cat_shuffle(x1, self.branch2(x2))


def _fuse_path(channels, j, i):
    """f_ij: branch j -> resolution and width of branch i."""
    if j > i:
        return nn.Sequential(nn.Conv2d(channels[j], channels[i], 1, bias=False), nn.BatchNorm2d(channels[i]),
                             nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"))
    if j == i:
        return nn.Identity()
    return nn.Sequential(*[_dw_pw(channels[j], channels[i] if k == i - j - 1 else channels[j], 2,
                                  relu=k < i - j - 1) for k in range(i - j)])


class LiteHRModule(nn.Module):
    """Naive Lite-HRNet module: shuffle units per branch, then the (quirky) multi-resolution fusion."""

    def __init__(self, channels, num_blocks):
        super().__init__()
        n = len(channels)
        self.layers = nn.ModuleList(nn.Sequential(*[ShuffleUnit(c) for _ in range(num_blocks)])
                                    for c in channels)
        self.fuse_layers = nn.ModuleList(nn.ModuleList(_fuse_path(channels, j, i) for j in range(n))
                                         for i in range(n))

    def forward(self, xs):
        x = [layer(xi) for layer, xi in zip(self.layers, xs)]
        outs = []
        for i, fuse in enumerate(self.fuse_layers):
            # PaddleDetection's "y = out[0] or f_i0(out[0]); for j: y += f_ij(out[j])" counts j = 0 twice,
            # and its in-place add leaves the pre-ReLU y0 in out[0] for the branches i > 0.
            y = fuse[0](x[0]) + sum(f(xj) for f, xj in zip(fuse, x))
            if i == 0:
                x[0] = y
            outs.append(F.relu(y))
        return outs


class IterativeHead(nn.Module):
    """From low to high resolution: add the upsampled previous result, then depthwise + pointwise convs."""

    def __init__(self, channels):
        super().__init__()
        rev = list(channels[::-1]) + [channels[0]]
        self.projects = nn.ModuleList(
            nn.Sequential(OrderedDict(depthwise_conv=_conv_norm(rev[k], rev[k], 3, groups=rev[k]),
                                      pointwise_conv=_conv_norm(rev[k], rev[k + 1], relu=True)))
            for k in range(len(channels)))

    def forward(self, xs):
        y = None
        for project, x in zip(self.projects, xs[::-1]):
            if y is not None:
                x = x + F.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=True)
            y = project(x)
        return y


class LiteHRNetBackbone(nn.Module):
    """Lite-HRNet with the iterative head: [B, 3, H, W] -> [B, 40, H/4, W/4]; H and W must be multiples of
    32 (the fusion upsamples by fixed factors, as in PaddleDetection)."""

    def __init__(self, name):
        super().__init__()
        if name not in LITEHRNETS:
            raise ValueError(f"unknown Lite-HRNet '{name}'; choose one of {', '.join(LITEHRNETS)}")
        cfg = LITEHRNETS[name]
        self.stem = Stem(3, cfg["stem_channels"])
        prev = [cfg["stem_channels"]]
        for s, (num_modules, channels) in enumerate(zip(cfg["num_modules"], cfg["num_channels"])):
            self.add_module(f"transition{s}", self._transition(prev, channels))
            self.add_module(f"stage{s}", nn.Sequential(
                *[LiteHRModule(channels, cfg["num_blocks"][s]) for _ in range(num_modules)]))
            prev = channels
        self.num_stages = len(cfg["num_modules"])
        self.head_layer = IterativeHead(prev)
        self.out_channels = prev[0]
        self.stride = 4
        init_pose_weights(self)

    @staticmethod
    def _transition(prev, channels):
        """Existing branches: stride-1 dw+pw where the width changes; new branches: stride-2 steps from the
        last (lowest-resolution) branch."""
        layers = []
        for i, c in enumerate(channels):
            if i < len(prev):
                layers.append(nn.Identity() if c == prev[i] else _dw_pw(prev[i], c, 1))
            else:
                n = i + 1 - len(prev)
                layers.append(nn.Sequential(*[_dw_pw(prev[-1], c if k == n - 1 else prev[-1], 2)
                                              for k in range(n)]))
        return nn.ModuleList(layers)

    def forward(self, x):
        xs = [self.stem(x)]
        for s in range(self.num_stages):
            transition = getattr(self, f"transition{s}")
            xs = [t(xs[min(i, len(xs) - 1)]) for i, t in enumerate(transition)]
            xs = getattr(self, f"stage{s}")(xs)
        return self.head_layer(xs)
