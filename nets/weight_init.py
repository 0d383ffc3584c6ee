"""The reference pose networks' initialisation (HRNet / SimpleBaseline ``init_weights``)."""
import torch.nn as nn


def init_pose_weights(module):
    """Every (transposed) convolution of ``module``: weights N(0, 0.001), biases 0; every BatchNorm: weight 1,
    bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
