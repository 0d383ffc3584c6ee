"""HRNet backbones for pose (Sun et al., "Deep High-Resolution Representation Learning", official
``pose_hrnet``): W32 and W48, output the stride-4 highest-resolution branch.

Stem: two 3x3 stride-2 convs (64 channels, stride 4), ``layer1``: four Bottlenecks (256 channels). Then
stages 2, 3, 4 with 2, 3, 4 parallel branches (widths ``w, 2w, 4w, 8w`` at strides 4, 8, 16, 32) made of
1, 4 and 3 modules; each module runs four BasicBlocks per branch, then fuses: branch i receives every
branch j, upsampled (1x1 conv + BN, nearest upsampling) when j is coarser, downsampled (3x3 stride-2 conv +
BN, ReLU between) when finer, summed with its own and passed through a ReLU. A transition before each
stage adapts the widths and adds the new, coarser branch (3x3 stride-2 conv from the coarsest one). The
last module fuses into the highest-resolution branch only. The pose head is the 1x1 ``final_layer``
(``DeconvHead`` with ``num_deconv: 0``).

Module names are the official ones (``conv1``, ``bn1``, ``conv2``, ``bn2``, ``layer1``, ``transition1``,
``stage2`` … ``stage4``, ``branches``, ``fuse_layers``), so ``pose_hrnet_w32_256x192.pth`` loads strictly,
and the classification HRNet's ImageNet file (``hrnet_w32-36af842e.pth``: a superset with
``incre_modules``, ``classifier``, full stage-4 fusion) initialises the backbone. Inputs should have sides
divisible by 32 (as in the official models); other sizes work as upsampling goes to the finer branch's size.
"""
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.resnet import BasicBlock, Bottleneck

from .weight_init import init_pose_weights

# name -> width of the highest-resolution branch (the others are 2x, 4x, 8x)
HRNETS = {"hrnet_w32": 32, "hrnet_w48": 48}
STAGE_MODULES = (1, 4, 3)   # modules of stages 2, 3, 4
BLOCKS_PER_BRANCH = 4


def _conv_bn(cin, cout, kernel, stride=1, relu=True):
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks, then the exchange between them (``fuse_layers[i][j]`` brings
    branch j to branch i; None on the diagonal). ``multi_scale_output=False`` keeps only branch 0's fusion."""

    def __init__(self, widths, multi_scale_output=True):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*(BasicBlock(w, w) for _ in range(BLOCKS_PER_BRANCH))) for w in widths)
        fuse_layers = nn.ModuleList()
        for i in range(len(widths) if multi_scale_output else 1):
            row = nn.ModuleList()
            for j, width in enumerate(widths):
                if j > i:    # coarser: 1x1 conv to branch i's width, upsampled in forward
                    row.append(_conv_bn(width, widths[i], 1, relu=False))
                elif j < i:  # finer: i - j stride-2 3x3 convs, the last one to branch i's width, no ReLU
                    steps = [_conv_bn(width, width, 3, 2) for _ in range(i - j - 1)]
                    row.append(nn.Sequential(*steps, _conv_bn(width, widths[i], 3, 2, relu=False)))
                else:
                    row.append(None)
            fuse_layers.append(row)
        self.fuse_layers = fuse_layers
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs):
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        fused = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[i]
            for j, layer in enumerate(row):
                if j < i:
                    y = y + layer(xs[j])
                elif j > i:
                    y = y + F.interpolate(layer(xs[j]), size=xs[i].shape[-2:], mode="nearest")
            fused.append(self.relu(y))
        return fused


def _transition(widths_before, widths_after):
    """Per branch of the next stage: None (same width), a 3x3 conv + BN + ReLU (other width), or for the
    new coarsest branch a stride-2 3x3 conv + BN + ReLU from the previous coarsest branch."""
    layers = nn.ModuleList()
    for i, width in enumerate(widths_after):
        if i < len(widths_before):
            layers.append(None if widths_before[i] == width else _conv_bn(widths_before[i], width, 3))
        else:
            layers.append(nn.Sequential(_conv_bn(widths_before[-1], width, 3, 2)))
    return layers


class HRNetBackbone(nn.Module):
    """Image -> the stride-4 branch of HRNet-W32 / W48 (``out_channels`` = 32 / 48 channels)."""

    def __init__(self, name):
        super().__init__()
        if name not in HRNETS:
            raise ValueError(f"unknown HRNet '{name}'; choose one of {', '.join(HRNETS)}")
        width = HRNETS[name]
        self.arch, self.out_channels = name, width
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        shortcut = nn.Sequential(nn.Conv2d(64, 256, 1, bias=False), nn.BatchNorm2d(256))
        self.layer1 = nn.Sequential(Bottleneck(64, 64, downsample=shortcut),
                                    *(Bottleneck(256, 64) for _ in range(3)))
        widths = [256]
        for stage, num_modules in enumerate(STAGE_MODULES, start=2):
            new_widths = [width * 2 ** b for b in range(stage)]
            setattr(self, f"transition{stage - 1}", _transition(widths, new_widths))
            last_stage = stage == 1 + len(STAGE_MODULES)
            setattr(self, f"stage{stage}", nn.Sequential(*(
                HighResolutionModule(new_widths, multi_scale_output=not (last_stage and m == num_modules - 1))
                for m in range(num_modules))))
            widths = new_widths
        init_pose_weights(self)

    def forward(self, x):
        x = self.layer1(self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))))
        xs = [x]
        for stage in range(2, 2 + len(STAGE_MODULES)):
            transition = getattr(self, f"transition{stage - 1}")
            # existing branches pass (or change width); the new one comes from the coarsest previous branch
            xs = [xs[i] if layer is None else layer(xs[i] if i < len(xs) else xs[-1])
                  for i, layer in enumerate(transition)]
            xs = getattr(self, f"stage{stage}")(xs)
        return xs[0]
