"""DDPProcessor under torchrun (gloo on the CPU, two processes): it trains, evaluates like one process would,
only rank 0 writes, and every rank resumes; the solver is chosen from torchrun's environment."""
import json
import os
import subprocess
import sys

import pytest
import torch

from nets import build_model
from processors import DDPProcessor, DPProcessor
from processors.checkpoint import load_checkpoint
from processors.config import ConfigError
from processors.ddp_processor import started_by_torchrun

from conftest import tiny_yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCHRUN_ENV = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511"}


def torchrun(cfg_path, port):
    """``torchrun --nproc_per_node 2 main.py --cfg cfg_path``; returns its combined output."""
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           "main.py", "--cfg", str(cfg_path)]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    return output


def test_torchrun_trains_evaluates_like_one_process_and_resumes_on_every_rank(tmp_path):
    path = tiny_yaml(tmp_path, "ddp")
    out = tmp_path / "weights" / "ddp"
    first = torchrun(path, 29521)
    assert "DistributedDataParallel: 2 processes (gloo)" in first
    # Only rank 0 wrote: one log with each line once, no archive (which a second writer would have made).
    assert sorted(p.name for p in out.iterdir()) == ["best.pth", "curves.png", "last.pth", "metrics.json", "tb",
                                                     "train.log", "val_preview.jpg", "val_results.json"]
    log = (out / "train.log").read_text()
    assert log.count("epoch 1/1: loss") == 1 and "batch 8 = 2 processes x 4, 5 iterations per epoch" in log
    ddp_stats = json.loads((out / "metrics.json").read_text())["history"][0]["stats"]

    # The same weights evaluated by one process: the 2 ranks' shards (21 instances, one of them padding
    # on the second rank) gathered in dataset order give the same keypoints and the same COCO stats.
    single = DPProcessor(tiny_yaml(tmp_path, "single", val={"weight_path": str(out / "best.pth")}))
    stats = single.run()
    assert stats == pytest.approx(ddp_stats, abs=1e-12)
    ddp_results = json.loads((out / "val_results.json").read_text())
    one_results = json.loads((tmp_path / "weights" / "single" / "val_results.json").read_text())
    assert len(ddp_results) == len(one_results) == 21
    for a, b in zip(ddp_results, one_results):
        assert a["image_id"] == b["image_id"] and a["score"] == pytest.approx(b["score"], abs=1e-6)
        assert a["keypoints"] == pytest.approx(b["keypoints"], abs=1e-3)

    resumed = tiny_yaml(tmp_path, "ddp", resume=True, optim={"epochs": 2})
    second = torchrun(resumed, 29531)
    assert f"resumed on all 2 processes from {out / 'last.pth'} after epoch 1" in second
    saved = load_checkpoint(out / "last.pth")
    assert [h["epoch"] for h in saved["history"]] == [1, 2] and saved["scheduler"]["last_epoch"] == 10
    assert not (out / "archive").exists()


def test_main_picks_the_solver_from_torchrun_environment(monkeypatch, tmp_path):
    assert not started_by_torchrun({})
    assert started_by_torchrun(TORCHRUN_ENV)
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="torchrun --nproc_per_node N main.py"):
        DDPProcessor(tiny_yaml(tmp_path, "ddp"))


def test_sync_bn_under_ddp_converts_and_is_refused_elsewhere(monkeypatch, tmp_path):
    path = tiny_yaml(tmp_path, optim={"sync_bn": True})
    with pytest.raises(ConfigError, match="optim.sync_bn.*torchrun"):
        DPProcessor(path)
    for name, value in TORCHRUN_ENV.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="optim.sync_bn.*CUDA devices only"):
        DDPProcessor(path)  # gpus: [] -> the CPU, where torch's SyncBatchNorm does not run
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    proc = DDPProcessor(tiny_yaml(tmp_path, "gpu", gpus=[0], optim={"sync_bn": True}))
    model = build_model(proc.cfg.model)
    batchnorms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    converted = proc._prepare_model(model)
    assert batchnorms > 20
    assert sum(isinstance(m, torch.nn.SyncBatchNorm) for m in converted.modules()) == batchnorms
    assert not any(type(m) is torch.nn.BatchNorm2d for m in converted.modules())


def test_batch_size_must_split_evenly_over_processes(monkeypatch, tmp_path):
    for name, value in TORCHRUN_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ConfigError, match="data.batch_size.*3 processes"):
        DDPProcessor(tiny_yaml(tmp_path, "ddp"))
