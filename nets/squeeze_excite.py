"""Squeeze-and-excitation (Hu et al., SENet): a channel gate from the globally pooled feature.

Names and rounding follow timm's ``SEModule`` (``fc1`` / ``fc2`` 1x1 convolutions with bias, the squeezed
width rounded to a multiple of 8), so timm's SE-ResNet ImageNet files load as they are.
"""
import torch.nn as nn


def squeezed_channels(channels, reduction):
    """Width of the squeeze: ``channels / reduction`` rounded to the nearest multiple of 8, at least 8
    (timm's ``make_divisible(channels / reduction, 8, round_limit=0)``; 256 / 16 -> 16, 2048 / 16 -> 128)."""
    return max(8, int(channels / reduction + 4) // 8 * 8)


class SqueezeExcite(nn.Module):
    """``x * sigmoid(fc2(relu(fc1(mean_hw(x)))))``: each channel scaled by a gate in (0, 1)."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        squeezed = squeezed_channels(channels, reduction)
        self.fc1 = nn.Conv2d(channels, squeezed, kernel_size=1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(squeezed, channels, kernel_size=1, bias=True)

    def forward(self, x):
        gate = self.fc2(self.relu(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * gate.sigmoid()
