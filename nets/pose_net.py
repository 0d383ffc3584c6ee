"""Top-down pose network: backbone -> head -> one heatmap per joint."""
import torch.nn as nn


class PoseNet(nn.Module):
    """``backbone`` (image -> features) followed by ``head`` (features -> heatmaps [B, J, h, w])."""

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x):
        return self.head(self.backbone(x))
