"""pycocotools keypoint evaluation against cocoeval.json."""
import json
import warnings

import numpy as np
import pytest

from datasets.coco_meta import STATS_NAMES
from processors.coco_eval import evaluate_keypoints, format_stats_table


@pytest.fixture(scope="module")
def ref(vectors_dir):
    with open(vectors_dir / "cocoeval.json") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def coco_gt(vectors_dir):
    from pycocotools.coco import COCO
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(vectors_dir / "gt_person_keypoints.json"))


def test_stats_names(ref):
    # HRNet spells the second name "Ap .5"; datasets.coco_meta uses "AP .5" (same order).
    assert tuple(n.upper() for n in ref["stats_names"]) == tuple(n.upper() for n in STATS_NAMES)


@pytest.mark.parametrize("level", [0, 1, 2])
def test_level_stats(ref, vectors_dir, tmp_path, level):
    entry = ref["levels"][level]
    out = tmp_path / "sub" / "results.json"
    stats = evaluate_keypoints(vectors_dir / ref["gt_annotation_file"], entry["results"], results_path=out)
    assert list(stats) == list(STATS_NAMES)
    np.testing.assert_allclose(list(stats.values()), entry["stats"], rtol=0, atol=1e-12)
    with open(out) as f:
        assert json.load(f) == entry["results"]
    assert [p.name for p in out.parent.iterdir()] == ["results.json"]  # no temp file left behind


def test_results_file_and_coco_object_agree(ref, vectors_dir, coco_gt):
    entry = ref["levels"][1]
    with open(vectors_dir / entry["results_file"]) as f:
        from_file = json.load(f)
    assert len(from_file) == entry["num_predictions"]
    stats = evaluate_keypoints(coco_gt, from_file)
    np.testing.assert_allclose(list(stats.values()), entry["stats"], rtol=0, atol=1e-12)


def test_empty_and_bad_results(coco_gt):
    with pytest.warns(RuntimeWarning, match="no predictions"):
        stats = evaluate_keypoints(coco_gt, [])
    assert list(stats) == list(STATS_NAMES) and all(v == 0.0 for v in stats.values())
    bad = [{"image_id": -1, "category_id": 1, "keypoints": [0.0] * 51, "score": 1.0}]
    with pytest.raises(ValueError, match="image ids"):
        evaluate_keypoints(coco_gt, bad)
    with pytest.raises(ValueError, match="score"):
        evaluate_keypoints(coco_gt, [{"image_id": 1, "category_id": 1, "keypoints": [0.0] * 51}])


def test_quiet_by_default(ref, coco_gt, capsys):
    evaluate_keypoints(coco_gt, ref["levels"][0]["results"])
    assert capsys.readouterr().out == ""
    evaluate_keypoints(coco_gt, ref["levels"][0]["results"], verbose=True)
    assert "Average Precision" in capsys.readouterr().out


def test_format_stats_table(ref):
    stats = dict(zip(STATS_NAMES, ref["levels"][0]["stats"]))
    table = format_stats_table(stats)
    header, values = table.splitlines()
    for name in STATS_NAMES:
        assert name in header
    assert "0.9275" in values and "1.0000" in values
    assert format_stats_table(list(stats.values())) == table
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError):
            format_stats_table([0.1, 0.2])
