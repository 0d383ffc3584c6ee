"""COCO keypoint evaluation with pycocotools, as HRNet's ``_do_python_keypoint_eval``.

``COCO(gt).loadRes(results_file)``, ``COCOeval(gt, dt, "keypoints")``, ``params.useSegm = None``,
``evaluate(); accumulate(); summarize()``; the ten summary numbers are returned by name
(``datasets.coco_meta.STATS_NAMES``).
"""
import contextlib
import io
import json
import os
import tempfile
import warnings

import numpy as np

from datasets.coco_meta import STATS_NAMES


def _quiet(verbose):
    return contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())


def _load_gt(gt, verbose):
    from pycocotools.coco import COCO

    if isinstance(gt, COCO):
        return gt
    path = os.fspath(gt)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"COCO ground-truth annotation file not found: {path}")
    with _quiet(verbose):
        return COCO(path)


def _check_results(results):
    for i, res in enumerate(results):
        missing = {"image_id", "category_id", "keypoints", "score"} - set(res)
        if missing:
            raise ValueError(f"results[{i}] lacks {sorted(missing)}; each result needs "
                             "image_id, category_id, keypoints (51 floats) and score")
        if len(res["keypoints"]) % 3 != 0:
            raise ValueError(f"results[{i}] (image_id {res['image_id']}): keypoints must be a flat "
                             f"list of x, y, score triples, got {len(res['keypoints'])} values")


def _write_json_atomic(obj, path):
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, sort_keys=True, indent=4)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def evaluate_keypoints(gt, results, results_path=None, verbose=False, sigmas=None):
    """Run COCOeval (keypoints) on ``results``; returns ``{stat_name: float}`` in STATS_NAMES order.

    ``gt``: path to a COCO person-keypoints annotation file or a ``pycocotools.coco.COCO``.
    ``results``: list of dicts ``{image_id, category_id, keypoints (51 floats: x, y, score
    per joint, image pixels), score}``; extra keys are allowed. The results are written as
    json to ``results_path`` (atomically) if given, else to a temporary file, and pycocotools
    reads that file. Empty ``results`` return all zeros with a warning. pycocotools' prints
    are silenced unless ``verbose``. ``sigmas`` (one OKS sigma per joint) replaces COCO's 17 for
    other keypoint sets.
    """
    from pycocotools.cocoeval import COCOeval

    results = list(results)
    _check_results(results)
    coco_gt = _load_gt(gt, verbose)
    if results_path is not None:
        _write_json_atomic(results, results_path)
    if not results:
        warnings.warn("evaluate_keypoints: no predictions to evaluate; every COCO stat is reported as 0",
                      RuntimeWarning, stacklevel=2)
        return {name: 0.0 for name in STATS_NAMES}

    tmp_dir = None
    if results_path is None:
        tmp_dir = tempfile.TemporaryDirectory(prefix="toppose_eval_")
        path = os.path.join(tmp_dir.name, "keypoint_results.json")
        _write_json_atomic(results, path)
    else:
        path = os.fspath(results_path)
    try:
        known = set(coco_gt.getImgIds())
        unknown = sorted({r["image_id"] for r in results} - known)
        if unknown:
            raise ValueError(f"results refer to image ids absent from the ground truth, e.g. {unknown[:5]}")
        with _quiet(verbose):
            coco_dt = coco_gt.loadRes(path)
            coco_eval = COCOeval(coco_gt, coco_dt, "keypoints")
            coco_eval.params.useSegm = None
            if sigmas is not None:
                coco_eval.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
    finally:
        if tmp_dir is not None:
            tmp_dir.cleanup()
    return {name: float(value) for name, value in zip(STATS_NAMES, coco_eval.stats)}


def format_stats_table(stats, decimals=4):
    """Two-row text table: the stat names, then their values with ``decimals`` decimals.

    ``stats`` is a ``{name: value}`` dict (as ``evaluate_keypoints`` returns) or a sequence
    of values in STATS_NAMES order.
    """
    if isinstance(stats, dict):
        names = list(stats)
        values = [stats[n] for n in names]
    else:
        values = list(stats)
        if len(values) != len(STATS_NAMES):
            raise ValueError(f"stats must be a dict or {len(STATS_NAMES)} values in STATS_NAMES order, "
                             f"got {len(values)} values")
        names = list(STATS_NAMES)
    cells = [f"{float(v):.{decimals}f}" for v in values]
    widths = [max(len(n), len(c)) for n, c in zip(names, cells)]
    header = " | ".join(n.rjust(w) for n, w in zip(names, widths))
    row = " | ".join(c.rjust(w) for c, w in zip(cells, widths))
    return f"| {header} |\n| {row} |"
