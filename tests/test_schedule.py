"""LR schedule: MultiStepLR semantics per epoch, linear warm-up, cosine to min_lr_ratio."""
import math
import types

import pytest
import torch

from processors.schedule import build_scheduler, lr_factor


def optim_cfg(**kw):
    base = dict(epochs=6, milestones=[2, 4], gamma=0.1, cosine=False, min_lr_ratio=0.01, warmup=0,
                warmup_ratio=0.001)
    base.update(kw)
    return types.SimpleNamespace(**base)


def test_matches_torch_multisteplr_per_epoch():
    cfg = optim_cfg()
    p = torch.nn.Parameter(torch.zeros(1))
    ref_opt = torch.optim.SGD([p], lr=1.0)
    ref = torch.optim.lr_scheduler.MultiStepLR(ref_opt, milestones=cfg.milestones, gamma=cfg.gamma)
    iters = 7
    for epoch in range(cfg.epochs):
        for it in range(iters):
            assert lr_factor(epoch * iters + it, iters, cfg) == pytest.approx(ref_opt.param_groups[0]["lr"])
        ref_opt.step()
        ref.step()


def test_warmup_then_steps_and_scheduler_object():
    cfg = optim_cfg(warmup=10)
    assert lr_factor(0, 5, cfg) == pytest.approx(0.001)
    assert lr_factor(5, 5, cfg) == pytest.approx(0.001 + 0.999 * 0.5)
    assert lr_factor(10, 5, cfg) == pytest.approx(0.1)  # epoch 2 already past the first milestone
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=2e-3)
    sched = build_scheduler(opt, 5, cfg)
    for _ in range(5):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-3 * (0.001 + 0.999 * 0.5))


def test_cosine_from_one_to_min_ratio():
    cfg = optim_cfg(cosine=True, milestones=[])
    total = cfg.epochs * 10
    assert lr_factor(0, 10, cfg) == pytest.approx(1.0)
    assert lr_factor(total // 2, 10, cfg) == pytest.approx(0.01 + 0.99 * 0.5)
    assert lr_factor(total, 10, cfg) == pytest.approx(0.01)
    quarter = 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.25))
    assert lr_factor(total // 4, 10, cfg) == pytest.approx(quarter, rel=1e-2)
