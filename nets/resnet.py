"""ResNet backbones (torchvision's architecture, so ImageNet checkpoints load as they are)."""
import torch.nn as nn
import torchvision

RESNETS = {
    "resnet18": (torchvision.models.resnet18, 512),
    "resnet34": (torchvision.models.resnet34, 512),
    "resnet50": (torchvision.models.resnet50, 2048),
    "resnet101": (torchvision.models.resnet101, 2048),
    "resnet152": (torchvision.models.resnet152, 2048),
}


class ResNetBackbone(nn.Module):
    """ResNet without its pooling and classifier: image -> stride-32 feature map.

    Parameter names match torchvision's (``conv1``, ``bn1``, ``layer1`` … ``layer4``), so a
    torchvision ImageNet state dict loads with only ``fc.*`` left over.
    """

    def __init__(self, name):
        super().__init__()
        if name not in RESNETS:
            raise ValueError(f"unknown ResNet '{name}'; choose one of {', '.join(RESNETS)}")
        constructor, self.out_channels = RESNETS[name]
        net = constructor(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))
