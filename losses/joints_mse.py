"""Heatmap regression loss of SimpleBaseline / HRNet."""
import torch.nn as nn


class JointsMSELoss(nn.Module):
    """``0.5 * MSE`` per joint, averaged over joints (the reference's loop, vectorised).

    With ``use_target_weight`` both prediction and target are multiplied by the joint's weight
    first, so invisible or off-map joints contribute nothing.
    """

    def __init__(self, use_target_weight=True):
        super().__init__()
        self.use_target_weight = use_target_weight

    def forward(self, output, target, target_weight):
        """output, target: [B, J, h, w]; target_weight: [B, J, 1]. Returns a scalar."""
        if output.shape != target.shape:
            raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} differ")
        diff = output.float() - target.float()
        if self.use_target_weight:
            diff = diff * target_weight.float().unsqueeze(-1)
        return 0.5 * diff.pow(2).mean()
