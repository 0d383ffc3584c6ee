"""Each optim toggle does what the README says: AMP (bfloat16 autocast on the CPU), EMA (the recurrence, used
for evaluation and best.pth, resumed), schedules in a real run, channels_last, torch.compile; one log per run."""
import math

import pytest
import torch

from processors import DPProcessor
from processors.checkpoint import load_checkpoint
from processors.optim import amp_dtype, build_ema, grad_scaler

from conftest import tiny_yaml


def conv_output_dtypes(proc):
    """Train one epoch of ``proc`` (set up) and return the dtypes the first convolution produced."""
    seen = []
    first_conv = next(m for m in proc.model.modules() if isinstance(m, torch.nn.Conv2d))
    handle = first_conv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    proc.train_one_epoch(1)
    handle.remove()
    return seen


def test_amp_trains_in_bfloat16_on_the_cpu(tmp_path):
    assert amp_dtype("cuda") == torch.float16 and amp_dtype("cpu") == torch.bfloat16
    assert not grad_scaler("cpu", True).is_enabled()  # bfloat16 needs no loss scaling
    amp = DPProcessor(tiny_yaml(tmp_path, "amp", optim={"amp": True}))
    amp._setup()
    assert set(conv_output_dtypes(amp)) == {torch.bfloat16}
    plain = DPProcessor(tiny_yaml(tmp_path, "fp32"))
    plain._setup()
    assert set(conv_output_dtypes(plain)) == {torch.float32}
    # Same data and initial weights: the runs differ only by the precision of the forward pass (Adam moves
    # each weight by at most about lr per step, 5 steps).
    a, b = dict(amp.model.named_parameters()), dict(plain.model.named_parameters())
    diffs = [(a[k] - b[k]).abs().max().item() for k in a]
    assert 0 < max(diffs) <= 2 * 5 * 0.002


def test_ema_recurrence_on_a_tiny_model():
    model = torch.nn.Linear(3, 2)
    ema = build_ema(model, decay=0.9)
    ema.update_parameters(model)  # the first update copies the weights
    expected = model.weight.detach().clone()
    torch.testing.assert_close(ema.module.weight, expected)
    for step in range(3):
        with torch.no_grad():
            model.weight.add_(1.0 + step)
        ema.update_parameters(model)
        expected = 0.9 * expected + 0.1 * model.weight.detach()
        torch.testing.assert_close(ema.module.weight, expected)


def test_ema_weights_are_evaluated_saved_as_best_and_resumed(tmp_path):
    proc = DPProcessor(tiny_yaml(tmp_path, "ema", optim={"ema": True, "ema_decay": 0.5}))
    proc.run()
    out = tmp_path / "weights" / "ema"
    last, best = load_checkpoint(out / "last.pth"), load_checkpoint(out / "best.pth")
    ema = {k[len("module."):]: v for k, v in last["ema"].items() if k.startswith("module.")}
    assert last["ema"]["n_averaged"].item() == 5
    for key, value in best["model"].items():
        torch.testing.assert_close(value, ema[key], msg=key)
    assert any(not torch.equal(last["model"][k], ema[k]) for k in ema if ema[k].is_floating_point())

    probe = DPProcessor(tiny_yaml(tmp_path, "ema", resume=True, optim={"ema": True, "ema_decay": 0.5, "epochs": 2}))
    probe._setup()
    probe._resume()
    for key, value in last["ema"].items():
        torch.testing.assert_close(probe.ema.state_dict()[key], value, msg=key)


def test_warmup_and_cosine_lr_of_each_training_step(tmp_path):
    """The lr used by every optimiser step of a real run equals the warm-up + cosine formula."""
    proc = DPProcessor(tiny_yaml(tmp_path, "lr", optim={"lr": 0.01, "epochs": 2, "warmup": 4, "warmup_ratio": 0.1,
                                                        "cosine": True, "min_lr_ratio": 0.05}))
    proc._setup()
    used = []
    proc.optimizer.register_step_pre_hook(lambda opt, args, kwargs: used.append(opt.param_groups[0]["lr"]))
    proc.train_one_epoch(1)
    proc.train_one_epoch(2)
    total = 2 * len(proc.train_loader)
    expected = []
    for it in range(total):
        factor = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * it / total))
        if it < 4:
            factor *= 0.1 + 0.9 * it / 4
        expected.append(0.01 * factor)
    assert used == pytest.approx(expected, rel=1e-9)


def test_step_schedule_in_a_real_run(tmp_path):
    proc = DPProcessor(tiny_yaml(tmp_path, "steps", optim={"lr": 0.01, "epochs": 3, "milestones": [1, 2],
                                                           "gamma": 0.5}))
    proc._setup()
    lrs = []
    for epoch in (1, 2, 3):
        lrs.append(proc.train_one_epoch(epoch)[1])
    assert lrs == pytest.approx([0.01, 0.005, 0.0025])


def test_channels_last_model_and_input(tmp_path):
    proc = DPProcessor(tiny_yaml(tmp_path, "cl", optim={"channels_last": True}))
    proc._setup()
    conv = next(m for m in proc.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    inputs = []
    handle = proc.model.register_forward_pre_hook(lambda m, args: inputs.append(args[0]))
    proc.train_one_epoch(1)
    handle.remove()
    assert inputs[0].is_contiguous(memory_format=torch.channels_last) and not inputs[0].is_contiguous()


def loss_and_gradients(module, model, batch):
    """Loss of ``module`` (``model`` or a wrapper of it) on ``batch`` and ``model``'s gradients; the model's state
    (BatchNorm statistics) is put back afterwards."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.zero_grad(set_to_none=True)
    loss = module(*batch)["loss"]
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.load_state_dict(state)
    model.zero_grad(set_to_none=True)
    return loss.item(), grads


def test_compile_trains_the_compiled_model_and_saves_plain_weights(tmp_path):
    """optim.compile: the training step calls the torch.compile'd model (inductor, here its C++ CPU backend); its
    loss and gradients are the eager model's, and checkpoints keep the plain parameter names."""
    proc = DPProcessor(tiny_yaml(tmp_path, "compiled", optim={"compile": True}))
    proc._setup()
    assert isinstance(proc.net, torch._dynamo.eval_frame.OptimizedModule) and proc.net._orig_mod is proc.model
    images, target, weight, _ = next(iter(proc.train_loader))
    batch = (proc.train_set.preprocess.normalize(images), *proc.codec.batch_targets(target, weight))
    proc.model.train()
    compiled_loss, compiled_grads = loss_and_gradients(proc.net, proc.model, batch)
    eager_loss, eager_grads = loss_and_gradients(proc.model, proc.model, batch)
    assert compiled_loss == pytest.approx(eager_loss, rel=1e-4)
    for name, grad in eager_grads.items():
        torch.testing.assert_close(compiled_grads[name], grad, rtol=1e-3, atol=1e-5 * grad.abs().max().item(),
                                   msg=name)
    before = {k: v.clone() for k, v in proc.model.state_dict().items()}
    loss, _ = proc.train_one_epoch(1)
    assert math.isfinite(loss)
    proc._save_last(1, 0, None)
    saved = load_checkpoint(tmp_path / "weights" / "compiled" / "last.pth")["model"]
    assert set(saved) == set(before)  # no "_orig_mod." prefixes
    assert any(not torch.equal(saved[k], before[k]) for k in before if before[k].is_floating_point())


def test_a_second_run_in_the_same_process_writes_its_own_log(tmp_path):
    path = tiny_yaml(tmp_path, "twice", val={"interval": 5})
    DPProcessor(path).run()
    DPProcessor(path).run()
    out = tmp_path / "weights" / "twice"
    archived = list((out / "archive").glob("*/train.log"))
    assert len(archived) == 1
    assert archived[0].read_text().count("epoch 1/1: loss") == 1
    assert (out / "train.log").read_text().count("epoch 1/1: loss") == 1
