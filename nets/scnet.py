"""SCNet backbones: ResNet bottlenecks with self-calibrated convolutions (Liu et al., CVPR 2020).

Each bottleneck splits its width in two halves after two 1x1 convolutions: one half goes through a
plain 3x3 convolution (``k1``), the other through the self-calibrated convolution (``scconv``):
``k4(k3(x) * sigmoid(x + upsample(k2(avgpool_4(x)))))``. Names follow the official ``scnet.py``
(``conv1_a``, ``k1``, ``scconv.k2``, ...), so its ImageNet checkpoints load with only ``fc.*`` left
over. SCNet-50 / SCNet-101 have 25.56 M / 44.57 M parameters as ImageNet classifiers.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def _conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv_bn(in_planes, out_planes, stride=1, relu=False):
    layers = [_conv3x3(in_planes, out_planes, stride), nn.BatchNorm2d(out_planes)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class SCConv(nn.Module):
    """Self-calibrated 3x3 convolution; ``pooling_r`` is the down-sampling of the calibration branch."""

    def __init__(self, planes, stride, pooling_r=4):
        super().__init__()
        self.k2 = nn.Sequential(nn.AvgPool2d(kernel_size=pooling_r, stride=pooling_r), *_conv_bn(planes, planes))
        self.k3 = _conv_bn(planes, planes)
        self.k4 = _conv_bn(planes, planes, stride, relu=True)

    def forward(self, x):
        gate = torch.sigmoid(x + F.interpolate(self.k2(x), x.shape[2:]))
        return self.k4(self.k3(x) * gate)


class SCBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        half = planes // 2
        self.conv1_a = nn.Conv2d(inplanes, half, kernel_size=1, bias=False)
        self.bn1_a = nn.BatchNorm2d(half)
        self.k1 = _conv_bn(half, half, stride, relu=True)
        self.conv1_b = nn.Conv2d(inplanes, half, kernel_size=1, bias=False)
        self.bn1_b = nn.BatchNorm2d(half)
        self.scconv = SCConv(half, stride)
        self.conv3 = nn.Conv2d(half * 2, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out_a = self.k1(self.relu(self.bn1_a(self.conv1_a(x))))
        out_b = self.scconv(self.relu(self.bn1_b(self.conv1_b(x))))
        out = self.bn3(self.conv3(torch.cat([out_a, out_b], dim=1)))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


SCNETS = {"scnet50": [3, 4, 6, 3], "scnet101": [3, 4, 23, 3]}


class SCNetBackbone(nn.Module):
    """SCNet without pooling and classifier: image -> stride-32 feature map of 2048 channels.

    ``classifier=True`` adds the ImageNet head (``avgpool`` + ``fc`` to 1000 classes), for checking
    the architecture against the published parameter counts.
    """

    out_channels = 2048

    def __init__(self, name, classifier=False):
        super().__init__()
        if name not in SCNETS:
            raise ValueError(f"unknown SCNet '{name}'; choose one of {', '.join(SCNETS)}")
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        blocks = SCNETS[name]
        self.layer1 = self._make_layer(64, blocks[0])
        self.layer2 = self._make_layer(128, blocks[1], stride=2)
        self.layer3 = self._make_layer(256, blocks[2], stride=2)
        self.layer4 = self._make_layer(512, blocks[3], stride=2)
        self.fc = nn.Linear(self.out_channels, 1000) if classifier else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * SCBottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * SCBottleneck.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * SCBottleneck.expansion))
        layers = [SCBottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * SCBottleneck.expansion
        layers += [SCBottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        if self.fc is not None:
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
        return x
