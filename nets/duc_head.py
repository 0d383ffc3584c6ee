"""DUC head (AlphaPose FastPose): dense upsampling convolution by pixel shuffle instead of deconvolution.

On a stride-32 feature map with C channels (2048 for ResNet-50):
``PixelShuffle(2)`` (C -> C/4, stride 16), then two DUC blocks (3x3 conv -> BN -> ReLU -> PixelShuffle(2)):
C/4 -> 1024 -> 256 (stride 8) and 256 -> 512 -> 128 (stride 4), then a 3x3 conv to the joints. The output
is at 1/4 of the input, like the three-deconv SimpleBaseline head. Module names are AlphaPose's
(``duc1``, ``duc2``, ``conv_out``).
"""
import torch.nn as nn

from losses import JointsMSELoss

UPSAMPLING = 8  # three PixelShuffle(2): a stride-32 backbone gives stride-4 heatmaps


class DUC(nn.Module):
    """3x3 conv (no bias) -> BN -> ReLU -> PixelShuffle(``upscale``): ``planes / upscale**2`` channels out
    at ``upscale`` times the resolution."""

    def __init__(self, in_channels, planes, upscale=2):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, planes, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.pixel_shuffle = nn.PixelShuffle(upscale)

    def forward(self, x):
        return self.pixel_shuffle(self.relu(self.bn(self.conv(x))))


class DUCHead(nn.Module):
    """PixelShuffle(2) -> DUC(C/4 -> 1024) -> DUC(256 -> 512) -> 3x3 conv to ``num_joints`` heatmaps.

    ``in_channels`` must be divisible by 4. The output conv is initialised N(0, 0.001) with bias 0 (as
    AlphaPose's ``conv_out``), BN weight 1 / bias 0. ``loss`` (default ``JointsMSELoss``) compares the
    heatmaps with their targets.
    """

    def __init__(self, in_channels, num_joints, loss=None):
        super().__init__()
        if in_channels % 4:
            raise ValueError(f"the DUC head pixel-shuffles its input by 2, so its {in_channels} input channels "
                             f"must be divisible by 4")
        self.shuffle1 = nn.PixelShuffle(2)
        self.duc1 = DUC(in_channels // 4, 1024)
        self.duc2 = DUC(256, 512)
        self.conv_out = nn.Conv2d(128, num_joints, kernel_size=3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.conv_out.weight, std=0.001)
        nn.init.zeros_(self.conv_out.bias)
        self.loss_module = loss if loss is not None else JointsMSELoss()

    def forward(self, x):
        return self.conv_out(self.duc2(self.duc1(self.shuffle1(x))))

    def loss(self, heatmaps, target, target_weight):
        return self.loss_module(heatmaps, target, target_weight)
