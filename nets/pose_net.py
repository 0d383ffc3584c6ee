"""Top-down pose network: backbone -> head, and in training the head's loss."""
import torch.nn as nn


class PoseNet(nn.Module):
    """``backbone`` (image -> features) followed by ``head`` (features -> the family's output).

    ``model(images)`` returns the head's output (heatmaps [B, J, h, w], or RLE's
    ``{"coords", "sigma"}``); ``model(images, target, target_weight)`` returns ``{"loss": scalar}``
    from the head's own loss, so every module with weights (RLE's flow) is part of the model.
    """

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x, target=None, target_weight=None):
        out = self.head(self.backbone(x))
        if target is None:
            return out
        return {"loss": self.head.loss(out, target, target_weight)}
