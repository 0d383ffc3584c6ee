"""RLE regression head (official RLE ``RegressFlow``): global average pooling, then two linear layers.

``fc_coord`` gives each joint's ``(x, y)`` normalised to the crop (``x / W - 0.5``); with
``coord_norm`` (the official code) its product with the feature is divided by the feature's L2 norm
before the bias is added, otherwise it is a plain linear layer (mmpose). ``fc_sigma`` gives one
sigma per coordinate through a sigmoid. Both are initialised Xavier-uniform with gain 0.01. The head
owns the RLE loss and its RealNVP flow (``loss_module.flow_model``); parameter names follow mmpose
(``fc_coord``, ``fc_sigma``, ``loss_module.flow_model.*``).
"""
import torch
import torch.nn as nn

from losses import RLELoss


class NormLinear(nn.Linear):
    """``x W^T / ||x|| + b``: the official RLE ``Linear(norm=True)``, with nn.Linear's parameter names."""

    def forward(self, x):
        return x.matmul(self.weight.t()) / torch.norm(x, dim=1, keepdim=True) + self.bias


class RLEHead(nn.Module):
    def __init__(self, in_channels, num_joints, coord_norm=True, loss=None):
        super().__init__()
        self.num_joints = num_joints
        self.fc_coord = (NormLinear if coord_norm else nn.Linear)(in_channels, num_joints * 2)
        self.fc_sigma = nn.Linear(in_channels, num_joints * 2)
        for fc in (self.fc_coord, self.fc_sigma):
            nn.init.xavier_uniform_(fc.weight, gain=0.01)
            nn.init.zeros_(fc.bias)
        self.loss_module = loss if loss is not None else RLELoss()

    def forward(self, features):
        """Features [B, C, h, w] -> ``{"coords": [B, J, 2], "sigma": [B, J, 2]}`` (sigma after sigmoid)."""
        feat = torch.flatten(nn.functional.adaptive_avg_pool2d(features, 1), 1)
        b = feat.shape[0]
        return {"coords": self.fc_coord(feat).reshape(b, self.num_joints, 2),
                "sigma": self.fc_sigma(feat).reshape(b, self.num_joints, 2).sigmoid()}

    def loss(self, outputs, target, target_weight):
        return self.loss_module(outputs["coords"], outputs["sigma"], target, target_weight)
