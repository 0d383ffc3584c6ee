"""Interruptions and faults lose nothing: Ctrl-C / SIGTERM save and say how to resume, kill -9 loses at most the
checkpoint interval, resumed runs end with the weights of an uninterrupted one; failed writes, wrong checkpoints,
NaN losses and failed starts are handled; files follow the umask; archives are pruned."""
import errno
import os
import signal
import subprocess
import sys

import pytest
import torch
import yaml

import main
from processors import DPProcessor
from processors.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, save_json

from conftest import tiny_yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = {"optim": {"lr": 0.002, "epochs": 3, "milestones": [2]}, "val": {"interval": 3}}


def start(cfg_path, tmp_path, tag):
    """``python main.py --cfg cfg_path`` in a subprocess (stdout piped, stderr to a file)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    err = open(tmp_path / f"{tag}.err", "w")
    return subprocess.Popen([sys.executable, "main.py", "--cfg", str(cfg_path)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=err, text=True)


def run_until(proc, trigger, sig):
    """Read the run's output until a line containing ``trigger``, then send ``sig``; returns the exit code."""
    for line in proc.stdout:
        if trigger in line:
            proc.send_signal(sig)
            break
    else:
        pytest.fail(f"the run ended without printing {trigger!r}")
    proc.stdout.read()
    return proc.wait(timeout=120)


def finish(cfg_path, tmp_path, tag):
    proc = start(cfg_path, tmp_path, tag)
    proc.stdout.read()
    assert proc.wait(timeout=300) == 0, (tmp_path / f"{tag}.err").read_text()[-2000:]


def weights(tmp_path, name):
    return load_checkpoint(tmp_path / "weights" / name / "last.pth")


def assert_same_weights(a, b):
    assert [h["epoch"] for h in a["history"]] == [h["epoch"] for h in b["history"]] == [1, 2, 3]
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    assert b["history"][-1]["loss"] == pytest.approx(a["history"][-1]["loss"], rel=1e-5)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted 3-epoch run (subprocess, like the interrupted ones)."""
    tmp_path = tmp_path_factory.mktemp("straight")
    finish(tiny_yaml(tmp_path, "straight", **RUN), tmp_path, "straight")
    return weights(tmp_path, "straight")


def test_ctrl_c_saves_says_how_to_resume_and_resume_matches_an_uninterrupted_run(tmp_path, straight):
    path = tiny_yaml(tmp_path, "sigint", **RUN)
    assert run_until(start(path, tmp_path, "sigint"), "epoch 1/3: loss", signal.SIGINT) == 130
    err = (tmp_path / "sigint.err").read_text().strip().splitlines()
    assert err[-1].startswith("SIGINT: training stopped") and f"set resume: true in {path}" in err[-1]
    assert "Traceback" not in "".join(err)
    saved = weights(tmp_path, "sigint")
    assert (saved["epoch"], saved["iteration"]) != (3, 0)
    assert "SIGINT: training stopped" in (tmp_path / "weights" / "sigint" / "train.log").read_text()
    finish(tiny_yaml(tmp_path, "sigint", resume=True, **RUN), tmp_path, "resumed")
    assert_same_weights(straight, weights(tmp_path, "sigint"))


def test_sigterm_stops_with_a_checkpoint(tmp_path):
    path = tiny_yaml(tmp_path, "sigterm", **RUN)
    assert run_until(start(path, tmp_path, "sigterm"), "epoch 1/3: loss", signal.SIGTERM) == 143
    assert (tmp_path / "sigterm.err").read_text().strip().splitlines()[-1].startswith("SIGTERM: training stopped")
    assert weights(tmp_path, "sigterm")["epoch"] >= 1


def test_kill_9_loses_at_most_the_checkpoint_interval(tmp_path, straight):
    run = {**RUN, "optim": {**RUN["optim"], "checkpoint_interval": 2}}
    path = tiny_yaml(tmp_path, "killed", **run)
    assert run_until(start(path, tmp_path, "killed"), "checkpoint at epoch 2, iteration 4/5", signal.SIGKILL) == -9
    saved = weights(tmp_path, "killed")
    assert (saved["epoch"], saved["iteration"]) in [(1, 4), (2, 0)]  # inside epoch 2, or its end if the kill was late
    out = tmp_path / "weights" / "killed"
    (out / ".tmp_x1y2last.pth").write_bytes(b"half a checkpoint")  # what a kill -9 inside a save leaves
    finish(tiny_yaml(tmp_path, "killed", resume=True, **run), tmp_path, "resumed")
    log = (out / "train.log").read_text()
    assert "removed 1 temporary files of interrupted writes: .tmp_x1y2last.pth" in log
    assert not list(out.glob(".tmp_*"))
    if saved["iteration"]:
        assert "iteration 4/5 of epoch 2" in log
    assert_same_weights(straight, weights(tmp_path, "killed"))


def test_files_follow_the_umask(tmp_path):
    for mask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        old = os.umask(mask)
        try:
            save_json({"a": 1}, tmp_path / f"m{mask}.json")
            save_checkpoint({"a": 1}, tmp_path / f"m{mask}.pth")
        finally:
            os.umask(old)
        assert (tmp_path / f"m{mask}.json").stat().st_mode & 0o777 == mode
        assert (tmp_path / f"m{mask}.pth").stat().st_mode & 0o777 == mode


def test_a_full_disk_keeps_the_previous_checkpoint_and_stops_clearly(tmp_path, monkeypatch, capsys):
    path = tiny_yaml(tmp_path, "full", optim={"epochs": 2}, val={"interval": 5})
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if obj.get("epoch") == 2 and "optimizer" in obj:
            f.write(b"the start of a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    assert main.main(["--cfg", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bars: one line
    assert err.startswith("error: could not write") and "No space left on device (the previous file is intact)" in err
    out = tmp_path / "weights" / "full"
    assert load_checkpoint(out / "last.pth")["epoch"] == 1 and not list(out.glob(".tmp_*"))


def test_resume_checks_the_checkpoint(tmp_path):
    path = tiny_yaml(tmp_path, "check", val={"interval": 1})
    DPProcessor(path).run()
    out = tmp_path / "weights" / "check"
    other = tiny_yaml(tmp_path, "check", resume=True, model={"name": "resnet34", "deconv_channels": 16})
    with pytest.raises(CheckpointError, match="holds another model .name: 'resnet18' in the checkpoint, "
                                              "'resnet34' in the YAML"):
        DPProcessor(other).run()
    (out / "last.pth").write_bytes((out / "best.pth").read_bytes())
    with pytest.raises(CheckpointError, match="cannot be resumed: it lacks optimizer, scheduler"):
        DPProcessor(tiny_yaml(tmp_path, "check", resume=True)).run()


def test_nonfinite_losses_skipped_when_asked_and_counted(tmp_path, monkeypatch):
    proc = DPProcessor(tiny_yaml(tmp_path, "nan", optim={"skip_nonfinite": True}))
    proc._setup()
    loss, seen = proc.model.head.loss, []

    def poisoned(*args):
        seen.append(1)
        value = loss(*args)
        return value * float("nan") if len(seen) in (2, 4) else value

    proc.model.head.loss = poisoned
    mean, _ = proc.train_one_epoch(1)
    assert len(seen) == 5 and mean == mean  # finite mean over the 3 good steps
    log = (tmp_path / "weights" / "nan" / "train.log").read_text()
    assert log.count("step skipped (optim.skip_nonfinite)") == 2 and "2 steps skipped (non-finite loss)" in log
    assert proc.scheduler.last_epoch == 5
    assert all(torch.isfinite(p).all() for p in proc.model.parameters())
    proc.model.head.loss = lambda *args: loss(*args) * float("inf")
    with pytest.raises(FloatingPointError, match=r"\(10 steps in a row\)"):
        proc.train_one_epoch(2)
        proc.train_one_epoch(3)


def test_a_start_that_never_trained_leaves_no_archive_and_old_archives_are_pruned(tmp_path):
    path = tiny_yaml(tmp_path, "arch", val={"interval": 5}, keep_archives=2)
    DPProcessor(path).run()
    out = tmp_path / "weights" / "arch"
    first = load_checkpoint(out / "last.pth")
    broken = tiny_yaml(tmp_path, "broken", model_name="arch", val={"interval": 5}, keep_archives=2,
                       data={"boxes": "detector"}, detector={"weights": str(tmp_path / "no_such_detector.pt")})
    assert main.main(["--cfg", str(broken)]) == 1
    assert not (out / "archive").exists()
    assert torch.equal(load_checkpoint(out / "last.pth")["model"]["head.final_layer.weight"],
                       first["model"]["head.final_layer.weight"])
    assert (out / "train.log").read_text().count("config ") == 2  # both starts' lines, nothing lost
    for _ in range(3):
        DPProcessor(path).run()
    assert len(list((out / "archive").iterdir())) == 2
    assert "keep_archives 2: deleted the archived runs" in (out / "train.log").read_text()
    assert yaml.safe_load(path.read_text())["keep_archives"] == 2
