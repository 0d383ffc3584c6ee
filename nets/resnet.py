"""ResNet and SE-ResNet backbones (torchvision's architecture, so ImageNet checkpoints load as they are)."""
import torch.nn as nn
import torchvision

from .squeeze_excite import SqueezeExcite

RESNETS = {
    "resnet18": (torchvision.models.resnet18, 512),
    "resnet34": (torchvision.models.resnet34, 512),
    "resnet50": (torchvision.models.resnet50, 2048),
    "resnet101": (torchvision.models.resnet101, 2048),
    "resnet152": (torchvision.models.resnet152, 2048),
}


class SEBlock(nn.Module):
    """A torchvision ``BasicBlock`` / ``Bottleneck`` with squeeze-and-excitation on its residual branch,
    after the last BN and before the addition of the shortcut (SENet, timm's SE-ResNet).

    It takes over the block's own layers (``conv1``, ``bn1`` … ``downsample``) and adds ``se``, so the
    names are torchvision's plus ``se.fc1`` / ``se.fc2``: timm's ``seresnet50`` state dict."""

    def __init__(self, block, reduction):
        super().__init__()
        self.bottleneck = hasattr(block, "conv3")
        for name in ("conv1", "bn1", "conv2", "bn2") + (("conv3", "bn3") if self.bottleneck else ()):
            setattr(self, name, getattr(block, name))
        self.se = SqueezeExcite((block.bn3 if self.bottleneck else block.bn2).num_features, reduction)
        self.relu, self.downsample = block.relu, block.downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.bottleneck:
            out = self.bn3(self.conv3(self.relu(out)))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.se(out) + shortcut)


class ResNetBackbone(nn.Module):
    """ResNet without its pooling and classifier: image -> stride-32 feature map.

    Parameter names match torchvision's (``conv1``, ``bn1``, ``layer1`` … ``layer4``), so a
    torchvision ImageNet state dict loads with only ``fc.*`` left over. With ``se=True`` every
    residual block gets squeeze-and-excitation (``layerX.Y.se.fc1`` / ``se.fc2``, timm's names and
    widths: ``channels / reduction``); ``arch`` is then ``se<name>`` (e.g. ``seresnet50``), the
    architecture whose ImageNet weights fit.
    """

    def __init__(self, name, se=False, reduction=16):
        super().__init__()
        if name not in RESNETS:
            raise ValueError(f"unknown ResNet '{name}'; choose one of {', '.join(RESNETS)}")
        constructor, self.out_channels = RESNETS[name]
        self.arch = f"se{name}" if se else name
        net = constructor(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        layers = [net.layer1, net.layer2, net.layer3, net.layer4]
        if se:
            layers = [nn.Sequential(*(SEBlock(block, reduction) for block in layer)) for layer in layers]
        self.layer1, self.layer2, self.layer3, self.layer4 = layers

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))
