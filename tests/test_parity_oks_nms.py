"""Rescoring + OKS-NMS (+ COCOeval of the kept set) against oks_nms.json."""
import json

import numpy as np
import pytest

from datasets.coco_meta import OKS_SIGMAS
from decoders import oks_iou, oks_nms, rescore
from processors.coco_eval import evaluate_keypoints


@pytest.fixture(scope="module")
def ref(vectors_dir):
    with open(vectors_dir / "oks_nms.json") as f:
        data = json.load(f)
    cands = data["candidates"]
    data["kpts"] = np.array([c["keypoints"] for c in cands], dtype=np.float32)  # float32 as in validate()
    data["box_scores"] = np.array([c["box_score"] for c in cands])
    data["areas"] = np.array([c["area"] for c in cands])
    data["rescored"] = np.array([c["rescored_score"] for c in cands])
    return data


def test_sigmas_are_coco(ref):
    np.testing.assert_allclose(ref["sigmas"], OKS_SIGMAS, rtol=0, atol=1e-15)


def test_rescore(ref):
    got = rescore(ref["kpts"][:, :, 2], ref["box_scores"], thresh=ref["in_vis_thre"])
    np.testing.assert_allclose(got, ref["rescored"], rtol=1e-6, atol=0)
    assert (got == 0).sum() == (ref["rescored"] == 0).sum() > 0   # all-low-kpt-scores candidates
    np.testing.assert_allclose(rescore(ref["kpts"], ref["box_scores"]), got)  # (N, J, 3) accepted


def test_pairwise_oks(ref):
    for image in ref["per_image"]:
        idx = np.array(image["candidate_indices"])
        got = np.stack([oks_iou(ref["kpts"][i], ref["kpts"][idx], ref["areas"][i], ref["areas"][idx])
                        for i in idx])
        np.testing.assert_allclose(got, np.array(image["pairwise_oks"]), rtol=0, atol=1e-7)


def test_keep_sets(ref):
    kept = []
    scores = rescore(ref["kpts"][:, :, 2], ref["box_scores"], thresh=ref["in_vis_thre"])
    for image in ref["per_image"]:
        idx = np.array(image["candidate_indices"])
        keep = oks_nms(ref["kpts"][idx], scores[idx], ref["areas"][idx], thresh=ref["oks_thre"])
        assert all(isinstance(k, int) for k in keep)
        assert keep == image["keep_local"], f"image {image['image_id']}"
        kept.extend(int(idx[k]) for k in keep)
    assert kept == ref["kept_global"]
    assert len(kept) < len(ref["candidates"])
    assert oks_nms(np.zeros((0, 17, 3)), [], []) == []


def test_evaluate_reference_results(ref, vectors_dir):
    stats = evaluate_keypoints(vectors_dir / "gt_person_keypoints.json", ref["hrnet_evaluate"]["results"])
    assert [n.upper() for n in stats] == [n.upper() for n in ref["hrnet_evaluate"]["stats_names"]]
    np.testing.assert_allclose(list(stats.values()), ref["hrnet_evaluate"]["stats"], rtol=0, atol=1e-12)


def test_evaluate_own_kept_results(ref, vectors_dir):
    """Our rescoring + NMS, written as COCO results, evaluate to the reference stats."""
    scores = rescore(ref["kpts"][:, :, 2], ref["box_scores"], thresh=ref["in_vis_thre"])
    results = []
    for image in ref["per_image"]:
        idx = np.array(image["candidate_indices"])
        for k in oks_nms(ref["kpts"][idx], scores[idx], ref["areas"][idx], thresh=ref["oks_thre"]):
            i = int(idx[k])
            results.append({"image_id": int(image["image_id"]), "category_id": 1,
                            "keypoints": ref["kpts"][i].reshape(-1).astype(float).tolist(),
                            "score": float(scores[i])})
    stats = evaluate_keypoints(vectors_dir / "gt_person_keypoints.json", results)
    np.testing.assert_allclose(list(stats.values()), ref["hrnet_evaluate"]["stats"], rtol=0, atol=1e-12)
