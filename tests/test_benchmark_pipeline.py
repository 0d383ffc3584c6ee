"""``tools/benchmark_pipeline.py``: its reference is HRNet's training sample (its affine and targets reproduce the
reference vectors, TopPose's exact path gives the same crops and targets), and a quick run writes every row with
its checks passed (not timed)."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def tool():
    path = Path(__file__).resolve().parents[1] / "tools" / "benchmark_pipeline.py"
    spec = importlib.util.spec_from_file_location("benchmark_pipeline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_affine_and_targets_reproduce_the_reference_vectors(tool, vectors_dir):
    with np.load(vectors_dir / "affine.npz") as affine:
        for i in range(len(affine["rot"])):
            trans = tool.ref_get_affine_transform(affine["center"][i], affine["scale"][i], affine["rot"][i],
                                                  tuple(int(v) for v in affine["output_size"]))
            np.testing.assert_array_equal(trans, affine["trans"][i])
    with np.load(vectors_dir / "targets.npz") as targets:
        reference = tool.ReferenceCOCO([])
        for prefix, joints in (("", "joints_crop"), ("edge_", "edge_joints_crop")):
            vis_key = "joints_vis" if prefix == "" else "edge_joints_vis"
            for k in range(len(targets[joints])):
                target, weight = reference.generate_target(targets[joints][k], targets[vis_key][k])
                np.testing.assert_array_equal(target, targets[prefix + "target"][k])
                np.testing.assert_array_equal(weight, targets[prefix + "target_weight"][k])


def test_toppose_exact_equals_the_reference_on_coco(tool, shared_data_dir):
    root = shared_data_dir / "coco_mini"
    sets = tool.build_rows(str(root / "annotations" / "person_keypoints_train2017.json"), str(root / "train2017"))
    result = tool.agreement(sets, seeds=(0, 1))
    assert result["samples_checked"] == 2 * 86 and result["reference_equals_exact"]
    assert result["+ decode_rows"]["max_mean_abs_diff"] == 0.0
    assert 0 < result["+ decode_reduce 1"]["mean_abs_diff"] < result["+ decode_reduce 0.5"]["mean_abs_diff"] < 2.5


def test_quick_run_writes_every_row(tool, tmp_path):
    out = tmp_path / "pipeline.json"
    tool.main(["--quick", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["quick"] is True and result["agreement"]["reference_equals_exact"] is True
    names = [r["pipeline"] for r in result["rows"]]
    assert names == ["reference", "TopPose exact", "+ decode_rows", "+ decode_reduce 1", "+ decode_reduce 0.5",
                     "+ device_targets"]
    rows = {r["pipeline"]: r for r in result["rows"]}
    assert rows["reference"]["speedup"] == 1.0
    for r in result["rows"]:
        assert r["workers"] == 0 and r["samples_per_s"] > 0 and r["speedup"] > 0 and r["rounds"] == 2
    assert rows["+ decode_reduce 1"]["options"] == {"decode_rows": True, "decode_reduce": 1.0}
    assert result["agreement"]["+ decode_rows"]["max_mean_abs_diff"] == 0.0
    assert set(result["targets_met"]) == {"exact_1.3x", "options_2x"}
    assert result["records"] == 16 and result["input_wh"] == [192, 256] and result["device_targets_cpu_ms"] > 0
    # device_targets keeps decode_reduce 0.5's pixels exactly (it only moves where the heatmaps are drawn)
    assert result["agreement"]["+ device_targets"] == result["agreement"]["+ decode_reduce 0.5"]


def test_a_disagreeing_pipeline_stops_the_tool(tool, tmp_path, monkeypatch):
    real = tool.ReferenceCOCO.generate_target

    def shifted(self, joints, joints_vis):
        target, weight = real(self, joints, joints_vis)
        return np.roll(target, 1, axis=2), weight

    monkeypatch.setattr(tool.ReferenceCOCO, "generate_target", shifted)
    with pytest.raises(AssertionError, match="disagree"):
        tool.main(["--quick", "--json", str(tmp_path / "x.json")])
    assert not (tmp_path / "x.json").exists()
