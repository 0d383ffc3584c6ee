"""Losses, built from the YAML ``loss`` section by ``build_loss``."""
from .joints_mse import JointsMSELoss

BUILDERS = {"joints_mse": lambda cfg: JointsMSELoss(cfg.use_target_weight)}


def build_loss(loss_cfg):
    """Loss module for the YAML ``loss`` section."""
    if loss_cfg.type not in BUILDERS:
        raise ValueError(f"unknown loss.type '{loss_cfg.type}'; choose one of {', '.join(BUILDERS)}")
    return BUILDERS[loss_cfg.type](loss_cfg)


__all__ = ["JointsMSELoss", "build_loss"]
