"""Atomic checkpoint writes and the main.py entry point's handling of bad configs."""
import os

import pytest
import torch

import main
from processors.checkpoint import atomic_write, load_checkpoint, save_checkpoint


def test_failed_write_keeps_previous_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "last.pth"
    save_checkpoint({"epoch": 1, "model": {"w": torch.ones(3)}}, path)

    def interrupted(f):
        f.write(b"partial checkpoint bytes")
        raise KeyboardInterrupt("killed mid-write")

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, interrupted)
    assert load_checkpoint(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["last.pth"]


def test_unreadable_checkpoint_is_named(tmp_path):
    (tmp_path / "c.pth").write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="cannot read checkpoint.*c.pth"):
        load_checkpoint(tmp_path / "c.pth")


def test_main_reports_config_errors_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  use_synthetic: true\n  bath_size: 4\n")
    assert main.main(["--cfg", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "config error" in err and "line 3" in err and "data.bath_size" in err and "Traceback" not in err
    assert main.cfg_path == "configs/sample.yaml"


def test_ci_fails_without_the_shared_folder(tmp_path, monkeypatch):
    """Without ../shared, CI stops with a message instead of running a suite whose parity tests would skip."""
    import shutil
    import subprocess
    repo = tmp_path / "checkout"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(os.path.join(os.path.dirname(__file__), "..", ".ci", "run"), repo / ".ci" / "run")
    done = subprocess.run(["bash", str(repo / ".ci" / "run")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "CI needs ../shared/vectors" in done.stderr

    from conftest import _shared
    monkeypatch.setattr("conftest.SHARED_DIR", tmp_path / "nowhere")
    monkeypatch.setenv("TOPPOSE_REQUIRE_SHARED", "1")
    with pytest.raises(pytest.fail.Exception, match="TOPPOSE_REQUIRE_SHARED=1 requires it"):
        _shared("vectors", "reference vectors")
