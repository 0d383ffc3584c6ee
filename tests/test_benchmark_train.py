"""``tools/benchmark_train.py`` runs its rows on a tiny model (not timed): every variant alone and through the
real DataLoader with and without ``data.device_targets``, the step being the training loop's."""
import json

import numpy as np
import torch

from conftest import tiny_yaml
from decoders import build_codec
from tools import benchmark_train
from tools.report import find_data


def test_quick_run_writes_every_row(tmp_path):
    cfg = tiny_yaml(tmp_path, "bench")
    out = tmp_path / "train.json"
    result = benchmark_train.main(["--cfg", str(cfg), "--quick", "--pipeline", "--workers", "1", "--device", "cpu",
                                   "--variants", "amp_cl", "--json", str(out)])
    assert json.loads(out.read_text())["rows"] == result["rows"]
    rows = [(r["variant"], r["kind"], r["device_targets"]) for r in result["rows"]]
    assert rows == [("amp_cl", "model", False), ("amp_cl", "pipeline", False), ("amp_cl", "pipeline", True)]
    for r in result["rows"]:
        assert r["images_per_s"] > 0 and r["share_of_model"] > 0 and r["amp"] and r["channels_last"]
    assert result["batch"] == 8 and result["input_size"] == [64, 32] and "targets_met" not in result  # CPU


def test_the_step_trains_the_model_as_the_training_loop(tmp_path):
    """One step of ``Step`` moves the weights as a hand-written Adam step on the loss of the same batch."""
    ann, images, _ = find_data(None, True, str(tmp_path / "synthetic"))
    cfg = benchmark_train.bench_config(str(tiny_yaml(tmp_path, "step")), ann, images, 8, 0)
    codec = build_codec(cfg)
    step = benchmark_train.Step(cfg, codec, torch.device("cpu"), amp=False, channels_last=False, compiled=False)
    images, target, weight = next(benchmark_train.fixed_batches(cfg, codec, torch.device("cpu")))
    before = {n: p.detach().clone() for n, p in step.model.named_parameters()}
    loss = step.model(step.normalize(images), target, weight)["loss"]
    loss.backward()
    grads = {n: p.grad.clone() for n, p in step.model.named_parameters()}
    step(images, target, weight)
    for name, p in step.model.named_parameters():
        if grads[name].abs().max() > 1e-6:  # Adam's first step moves each weight by lr against its gradient's sign
            moved = (p.detach() - before[name])[grads[name].abs() > 1e-6]
            assert np.allclose(moved.abs().numpy(), 1e-4, rtol=0.05), name
