"""``tools/benchmark_inference.py``: a quick run through ``Predictor`` writes a row per config x batch with consistent
timings and its batching check passed; a difference between batched and one-by-one keypoints stops the tool, and
its default configs are one per family (not timed)."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from processors.config import load_config

REPO = Path(__file__).resolve().parents[1]
SAMPLES = [str(REPO / "configs" / "sample.yaml"), str(REPO / "configs" / "sample_rle.yaml")]


@pytest.fixture(scope="module")
def tool():
    from tools import benchmark_inference
    return benchmark_inference


def test_quick_run_writes_a_checked_row_per_config_and_batch(tool, tmp_path):
    out = tmp_path / "inference.json"
    threads = torch.get_num_threads()
    result = tool.main(["--cfg", *SAMPLES, "--batches", "1", "2", "--quick", "--json", str(out)])
    written = json.loads(out.read_text())
    assert written["rows"] == result["rows"] and written["quick"] is True
    assert {"cpu", "cores", "torch", "date"} <= set(written["machine"])
    assert len(written["load_avg"]["start"]) == 3 and len(written["load_avg"]["end"]) == 3
    assert written["check"]["passed"] is True and written["check"]["tolerance_px"] == 1e-3
    assert [(r["config"], r["batch"]) for r in written["rows"]] == [
        ("sample", 1), ("sample", 2), ("sample_rle", 1), ("sample_rle", 2)]
    for r in written["rows"]:
        assert r["reps"] == 1 and r["threads"] == threads and r["flip_test"] is True and r["input_hw"] == [128, 96]
        assert all(math.isfinite(r[k]) and r[k] > 0 for k in ("ms_per_call", "ms_per_person", "persons_per_s"))
        assert r["ms_per_person"] == pytest.approx(r["ms_per_call"] / r["batch"], rel=1e-3)
        assert r["persons_per_s"] == pytest.approx(1e3 / r["ms_per_person"], rel=1e-3)
        assert 0 <= r["check_max_diff_px"] <= 1e-3 and 0 <= r["check_max_diff_score"] <= 1e-4
        assert r["float32_diff_px"] < 0.5                 # rounding at most, not a misplaced crop
    rows = {(r["config"], r["batch"]): r for r in written["rows"]}
    assert rows[("sample", 1)]["float32_diff_px"] == 0.0  # the same batch-1 call as the reference
    assert rows[("sample", 2)]["model"] == "dconv resnet18" and rows[("sample", 2)]["codec"] == "HeatmapCodec"
    assert rows[("sample_rle", 2)]["model"] == "rle resnet18" and rows[("sample_rle", 2)]["codec"] != "HeatmapCodec"
    assert torch.get_num_threads() == threads             # restored


def test_compare_rejects_differences_above_the_tolerances(tool):
    rng = np.random.default_rng(0)
    keypoints = np.concatenate([rng.uniform(0, 640, (4, 17, 2)), rng.uniform(0, 1, (4, 17, 1))], 2)
    assert tool.compare(keypoints, keypoints.copy(), "same") == (0.0, 0.0)
    near = keypoints.copy()
    near[1, 3, 1] += 5e-4
    near[0, 0, 2] += 5e-5
    assert tool.compare(near, keypoints, "near") == pytest.approx((5e-4, 5e-5), rel=1e-6)
    moved = keypoints.copy()
    moved[2, 5, 0] += 0.01
    with pytest.raises(AssertionError, match=r"sample batch 4: .* disagree by 0\.01 px .* box 2, joint 5"):
        tool.compare(moved, keypoints, "sample batch 4")
    rescored = keypoints.copy()
    rescored[3, 0, 2] += 1e-3
    with pytest.raises(AssertionError, match="disagree"):
        tool.compare(rescored, keypoints, "score")
    broken = keypoints.copy()
    broken[0, 0, 0] = np.nan
    with pytest.raises(AssertionError, match="disagree"):
        tool.compare(broken, keypoints, "nan")


def test_a_batch_dependent_prediction_stops_the_tool(tool, tmp_path, monkeypatch):
    real = tool.Predictor.predict_crops

    def shifted_when_batched(self, crops, centers, scales):
        return real(self, crops, centers, scales) + 0.01 * (len(crops) > 1)

    monkeypatch.setattr(tool.Predictor, "predict_crops", shifted_when_batched)
    with pytest.raises(AssertionError, match="disagree"):
        tool.main(["--cfg", SAMPLES[0], "--batches", "2", "--quick", "--json", str(tmp_path / "x.json")])
    assert not (tmp_path / "x.json").exists()


def test_default_configs_are_one_per_family(tool):
    assert len(tool.FAMILIES) == 11
    models = set()
    for family, path in tool.FAMILIES.items():
        cfg = load_config(REPO / path, check_paths=False)
        models.add((cfg.model.type, cfg.model.se, cfg.model.name, tuple(cfg.data.input_size)))
        assert tool.family_of(path) == family
    assert len(models) == 11
    assert {t for t, *_ in models} == {"dconv", "duc", "rle"}
