"""Optimisers, the weights' exponential moving average and mixed precision, from the YAML ``optim`` section.

Mixed precision (``optim.amp``) is ``torch.amp``: float16 autocast with a ``GradScaler`` on CUDA, bfloat16
autocast on the CPU (no scaler needed: bfloat16 has float32's range). NVIDIA apex is not used.
"""
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

OPTIMIZERS = {
    "adam": lambda params, o: torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay),
    "adamw": lambda params, o: torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay),
    "sgd": lambda params, o: torch.optim.SGD(params, lr=o.lr, momentum=o.momentum,
                                             weight_decay=o.weight_decay, nesterov=False),
}


def build_optimizer(model, optim_cfg):
    """The ``optim.optimizer`` of every parameter of ``model`` (its loss's learnable parts included)."""
    return OPTIMIZERS[optim_cfg.optimizer](model.parameters(), optim_cfg)


def build_ema(model, decay):
    """``AveragedModel`` keeping ``ema = decay * ema + (1 - decay) * weights`` after each step, for the
    parameters and the buffers (BatchNorm statistics); its first update copies the weights."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def amp_dtype(device):
    """The autocast dtype of ``optim.amp`` on ``device``: float16 on CUDA, bfloat16 elsewhere."""
    return torch.float16 if torch.device(device).type == "cuda" else torch.bfloat16


def grad_scaler(device, amp):
    """A ``torch.amp.GradScaler``, enabled for float16 training on CUDA only."""
    return torch.amp.GradScaler("cuda", enabled=amp and torch.device(device).type == "cuda")
