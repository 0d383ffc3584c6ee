"""Residual Log-likelihood Estimation loss (Li et al., ICCV 2021), as the official RLE code.

For predicted coordinates ``mu`` and sigmas ``sigma`` (after the sigmoid) of a joint with target
``x`` (all normalised to the crop), the residual ``r = (mu - x) / sigma`` gives per coordinate

    loss = log(sigma) - log G(r) + log(sigma * sqrt(2 pi)) + |x - mu| / (sqrt(2) sigma + 1e-9)

where ``log G`` is the RealNVP flow's 2-D log-density of ``r``, the first two terms the flow part
("nf_loss") and the last two ``-log Q`` of the Laplace residual term. As in the official code (and
mmpose), ``log G`` of the joint is subtracted from each of its two coordinate terms. Each joint is
weighted by its target weight (0 for unlabelled joints and joints outside the crop), and the sum is
divided by the batch size.
"""
import math

import torch
import torch.nn as nn

from .realnvp import RealNVP


class RLELoss(nn.Module):
    """RLE loss with its flow as a sub-module (``flow_model``), so optimiser and checkpoints see it."""

    def __init__(self):
        super().__init__()
        self.flow_model = RealNVP()

    def forward(self, coords, sigma, target, target_weight):
        """coords, sigma, target: [B, J, 2]; target_weight: [B, J, 1] (or [B, J, 2]). Returns a scalar."""
        with torch.autocast(device_type=coords.device.type, enabled=False):
            coords, sigma, target = coords.float(), sigma.float(), target.float()
            weight = target_weight.float()[..., :1]
            b, j, _ = coords.shape
            log_phi = self.flow_model.log_prob(((coords - target) / sigma).reshape(-1, 2)).reshape(b, j, 1)
            nf_loss = torch.log(sigma) - log_phi
            log_q = (torch.log(sigma * math.sqrt(2 * math.pi))
                     + torch.abs(target - coords) / (math.sqrt(2) * sigma + 1e-9))
            loss = ((nf_loss + log_q) * weight).sum() / b
        if not torch.isfinite(loss):
            bad = {name: int((~torch.isfinite(t)).sum()) for name, t in
                   (("coords", coords), ("sigma", sigma), ("target", target))}
            raise FloatingPointError(f"RLE loss is {loss.item()}: non-finite values among the inputs {bad}, "
                                     f"sigma range [{sigma.min().item():.3g}, {sigma.max().item():.3g}]")
        return loss
