"""Losses: heatmap MSE with target weights, and RLE with its RealNVP flow.

Each model head owns its loss (``nets``); ``build_loss(loss_cfg)`` makes the one the YAML ``loss``
section names (``processors.config`` has already resolved ``auto`` to the model family's loss).
"""
from .joints_mse import JointsMSELoss
from .realnvp import RealNVP
from .rle_loss import RLELoss

BUILDERS = {"joints_mse": lambda cfg: JointsMSELoss(cfg.use_target_weight), "rle": lambda cfg: RLELoss()}


def build_loss(loss_cfg):
    """Loss module for the YAML ``loss`` section."""
    if loss_cfg.type not in BUILDERS:
        raise ValueError(f"unknown loss.type '{loss_cfg.type}'; choose one of {', '.join(BUILDERS)}")
    return BUILDERS[loss_cfg.type](loss_cfg)


__all__ = ["JointsMSELoss", "RLELoss", "RealNVP", "build_loss"]
