"""Learning-rate schedule: optional linear warm-up, then step (MultiStepLR) or cosine decay.

Stepped once per iteration through ``torch.optim.lr_scheduler.LambdaLR``, so its state is the
iteration count and resumes exactly. Milestones are in epochs, as in MultiStepLR.
"""
import math

from torch.optim.lr_scheduler import LambdaLR


def lr_factor(iteration, iters_per_epoch, optim_cfg):
    """Multiplier of the base lr at ``iteration`` (0-based) for the YAML ``optim`` section."""
    total = max(1, optim_cfg.epochs * iters_per_epoch)
    if optim_cfg.cosine:
        progress = min(iteration, total) / total
        factor = optim_cfg.min_lr_ratio + (1 - optim_cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    else:
        epoch = iteration // iters_per_epoch
        factor = optim_cfg.gamma ** sum(epoch >= m for m in optim_cfg.milestones)
    if iteration < optim_cfg.warmup:
        ratio = optim_cfg.warmup_ratio
        factor *= ratio + (1 - ratio) * iteration / optim_cfg.warmup
    return factor


def build_scheduler(optimizer, iters_per_epoch, optim_cfg):
    """Per-iteration LambdaLR implementing ``lr_factor``."""
    return LambdaLR(optimizer, lambda it: lr_factor(it, iters_per_epoch, optim_cfg))
