"""CPU inference speed of every config family through the one inference path, ``Predictor.predict``.

    python tools/benchmark_inference.py [--cfg configs/coco/A.yaml ... | --all] [--batches 1 32]
        [--threads 1 2] [--max-s 5] [--max-row-s 60] [--quick] [--json benchmarks/inference_cpu.json]

Default configs: one per family (``FAMILIES``); ``--all`` takes every ``configs/coco/*.yaml``. Each model is built
as its config says with random weights (``initialise=False``: no weight file is read), in eval mode, on the CPU,
and wrapped in a ``processors.inference.Predictor`` with the config's codec, preprocessing, back-projection and
flip test (``decoder.flip_test``, the product default: on) and ``batch_size`` = the persons per call.

Input: the COCO-MINI image (``../shared/data/coco_mini``) with the most ground-truth people and their boxes,
repeated with a 5 % jitter to reach the largest batch; without COCO-MINI, a random 480x640 image and random boxes.
A row times ``predictor.predict(image_bgr, boxes_xyxy, scores)`` end to end (crops, normalisation, forward,
flipped forward, decoding, back-projection, rescoring) under ``torch.inference_mode``: one warm-up call, then
calls until ``--max-s`` seconds have passed and at least 3 calls were made, but no more than ``--max-row-s``
seconds (at least one call); the median is reported in ms per call, ms per person and persons per second.
"threads" sets ``torch.set_num_threads`` and ``cv2.setNumThreads`` (default: the libraries' defaults, restored
afterwards).

Check before timing (the tool stops if it fails): the first 4 boxes predicted in one call must give the keypoints
of the same boxes predicted one at a time (batch 1) to 1e-3 px and 1e-4 score, through a float64 copy of the
model. In float32 the forward differs between batch sizes by rounding (~1e-6 relative), which the decoding of
random-weight outputs can magnify past those tolerances (DARK's Newton step on flat heatmaps: 0.03 px for
``configs/sample.yaml``; 1e-3 in score for SCNet-50 RLE): each row also records that float32 difference (its
warm-up call against one-by-one float32 predictions), unchecked.

Prints a markdown table and writes JSON (``--json``, default ``benchmarks/inference_cpu.json``) with the machine's
facts and load averages. The host may be shared and noisy: compare rows of one run. ``--quick`` is a smoke run
(the given configs, one timed call a row) that writes JSON only where ``--json`` says.
"""
import argparse
import copy
import glob
import json
import os
import statistics
import sys
import time

import cv2
import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tools.report import machine_facts, write_json  # noqa: E402
from datasets.keypoints import KeypointMeta  # noqa: E402
from datasets.preprocess import Preprocess  # noqa: E402
from decoders import build_codec  # noqa: E402
from nets import build_model  # noqa: E402
from processors.config import load_config  # noqa: E402
from processors.inference import Predictor  # noqa: E402

FAMILIES = {  # family: config, relative to the repository root
    "SimpleBaseline ResNet-50": "configs/coco/res50_dconv_256x192.yaml",
    "DUC ResNet-50": "configs/coco/res50_duc_256x192.yaml",
    "SE-ResNet-50": "configs/coco/se_res50_dconv_256x192.yaml",
    "HRNet-W32": "configs/coco/hrnet_w32_256x192.yaml",
    "MobileNetV2 heatmaps": "configs/coco/mobilenetv2_dconv_256x192.yaml",
    "Lite-HRNet (PP-TinyPose) 256x192": "configs/coco/pp_tinypose_256x192.yaml",
    "Lite-HRNet (PP-TinyPose) 128x96": "configs/coco/pp_tinypose_128x96.yaml",
    "RLE ResNet-50": "configs/coco/res50_rle_256x192.yaml",
    "RLE SCNet-50": "configs/coco/scnet50_rle_256x192.yaml",
    "RLE MobileNetV2": "configs/coco/mobilenetv2_rle_256x192.yaml",
    "RLE MobileNetV2 x0.5": "configs/coco/mobilenetv2_050_rle_192x192.yaml",
}
COCO_MINI = os.path.join(ROOT, "..", "shared", "data", "coco_mini")
BATCHES = (1, 32)
MAX_S, MAX_ROW_S = 5.0, 60.0
MIN_REPS, WARMUP = 3, 1
CHECK_BOXES = 4
TOLERANCE_PX, TOLERANCE_SCORE = 1e-3, 1e-4


def config_name(path):
    return os.path.splitext(os.path.basename(path))[0]


def family_of(path):
    """The ``FAMILIES`` name of a config file (by its file name), or None."""
    names = {config_name(p): family for family, p in FAMILIES.items()}
    return names.get(config_name(path))


def inference_input(count, seed=0):
    """(image BGR uint8, ``count`` boxes xyxy float64, box scores, description): the COCO-MINI image with the
    most people and their ground-truth boxes, repeated with a 5 % jitter up to ``count``; without COCO-MINI, a
    random 480x640 image and random boxes."""
    rng = np.random.default_rng(seed)
    ann_path = os.path.join(COCO_MINI, "annotations", "person_keypoints_train2017.json")
    if os.path.isfile(ann_path):
        with open(ann_path, encoding="utf-8") as f:
            coco = json.load(f)
        boxes_of = {}
        for a in coco["annotations"]:
            if not a.get("iscrowd") and a["bbox"][2] >= 1 and a["bbox"][3] >= 1:
                boxes_of.setdefault(a["image_id"], []).append(a["bbox"])
        image_id = max(sorted(boxes_of), key=lambda i: len(boxes_of[i]))
        info = next(im for im in coco["images"] if im["id"] == image_id)
        image_path = os.path.join(COCO_MINI, "train2017", info["file_name"])
        image = cv2.imread(image_path)
        if image is None:
            sys.exit(f"error: cannot read {os.path.normpath(image_path)}")
        xywh = np.array(boxes_of[image_id], np.float64)
        source = {"image": os.path.normpath(image_path), "ground_truth_boxes": len(xywh)}
    else:
        image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
        xy = rng.uniform([0, 0], [480, 240], (count, 2))
        xywh = np.concatenate([xy, rng.uniform([40, 80], [160, 240], (count, 2))], 1)
        source = {"image": "random 480x640", "ground_truth_boxes": 0}
    picks = xywh[np.arange(count) % len(xywh)]
    jitter = np.where(np.arange(count)[:, None] < len(xywh), 0.0, rng.normal(0, 0.05, (count, 4)))
    picks = picks + jitter * picks[:, [2, 3, 2, 3]]
    h, w = image.shape[:2]
    x1, y1 = np.clip(picks[:, 0], 0, w - 2), np.clip(picks[:, 1], 0, h - 2)
    boxes = np.stack([x1, y1, np.clip(x1 + picks[:, 2], x1 + 1, w - 1), np.clip(y1 + picks[:, 3], y1 + 1, h - 1)], 1)
    return image, boxes, rng.uniform(0.5, 1.0, count), {**source, "image_hw": [h, w]}


def build_predictor(cfg, model, batch):
    """A CPU ``Predictor`` of ``model`` as ``Predictor.from_config`` makes it, ``batch`` boxes a forward."""
    keypoints = KeypointMeta.from_config(cfg.keypoints)
    return Predictor(model, build_codec(cfg, keypoints), keypoints, Preprocess.from_config(cfg.data),
                     unbiased=cfg.data.unbiased, flip_test=cfg.decoder.flip_test, device="cpu",
                     batch_size=batch, in_vis_thresh=cfg.val.in_vis_thresh)


def compare(batched, one_by_one, what):
    """(max px difference, max score difference) between keypoints [N, J, 3] of a batched call and of the same
    boxes one at a time; raises AssertionError naming ``what`` above ``TOLERANCE_PX`` / ``TOLERANCE_SCORE``."""
    diff = np.abs(np.asarray(batched, np.float64) - np.asarray(one_by_one, np.float64))
    px, score = float(diff[..., :2].max()), float(diff[..., 2].max())
    if not (px <= TOLERANCE_PX and score <= TOLERANCE_SCORE):
        excess = np.maximum(diff[..., :2].max(2) / TOLERANCE_PX, diff[..., 2] / TOLERANCE_SCORE)
        box, joint = np.unravel_index(np.nan_to_num(excess, nan=np.inf).argmax(), excess.shape)
        raise AssertionError(f"{what}: batched and one-by-one predictions disagree by {px:.3g} px and {score:.3g} "
                             f"in score (worst at box {box}, joint {joint}); allowed {TOLERANCE_PX} px, "
                             f"{TOLERANCE_SCORE} score: batching must not change the keypoints")
    return px, score


def time_calls(call, max_s, max_row_s, min_reps):
    """(median s, repetitions, CPU time / wall time) of ``call()`` repeated for ``max_s`` s and at least
    ``min_reps`` times, stopping after ``max_row_s`` s (at least one call)."""
    times, start, cpu = [], time.perf_counter(), time.process_time()
    while True:
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - start
        if elapsed >= max_s and (len(times) >= min_reps or elapsed >= max_row_s):
            break
    cpu_per_wall = (time.process_time() - cpu) / elapsed
    return statistics.median(times), len(times), cpu_per_wall


def set_threads(threads, defaults):
    """``threads`` for torch and OpenCV; None restores ``defaults`` (torch's, OpenCV's)."""
    torch.set_num_threads(threads or defaults[0])
    cv2.setNumThreads(threads or defaults[1])


def float64_copy(model):
    """A float64 copy of ``model`` that takes the ``Predictor``'s float32 input."""
    model64 = copy.deepcopy(model).double()
    model64.register_forward_pre_hook(lambda module, args: tuple(a.double() for a in args))
    return model64


def one_by_one(cfg, model, image, boxes, scores):
    """Keypoints [N, J, 3] of ``boxes`` predicted one box a call by a batch-1 ``Predictor`` of ``model``."""
    single = build_predictor(cfg, model, 1)
    return np.concatenate([single.predict(image, boxes[i:i + 1], scores[i:i + 1])[0] for i in range(len(boxes))])


def batching_check(cfg, model, image, boxes, scores, what):
    """(max px, max score difference) between ``boxes`` predicted in one call and one at a time, by a float64
    copy of ``model``; raises AssertionError above the tolerances (``compare``)."""
    model64 = float64_copy(model)
    batched = build_predictor(cfg, model64, len(boxes)).predict(image, boxes, scores)[0]
    return compare(batched, one_by_one(cfg, model64, image, boxes, scores), what)


@torch.inference_mode()
def config_rows(path, batches, threads, max_s, max_row_s, min_reps, defaults, inputs):
    """One row per (batch, threads) of the config at ``path``, after the batching check."""
    cfg = load_config(path, check_paths=False)
    model = build_model(cfg.model, initialise=False).eval()
    image, boxes, scores, _ = inputs
    set_threads(None, defaults)
    check_px, check_score = batching_check(cfg, model, image, boxes[:CHECK_BOXES], scores[:CHECK_BOXES],
                                           f"{config_name(path)}, {CHECK_BOXES} boxes in float64")
    reference = one_by_one(cfg, model, image, boxes[:CHECK_BOXES], scores[:CHECK_BOXES])
    h, w = cfg.data.input_size
    rows = []
    for batch in batches:
        predictor = build_predictor(cfg, model, batch)
        args = (image, boxes[:batch], scores[:batch])
        for thread_count in threads:
            set_threads(thread_count, defaults)
            for _ in range(WARMUP):
                keypoints = predictor.predict(*args)[0]
            n = min(CHECK_BOXES, batch)
            float32_diff = np.abs(keypoints[:n].astype(np.float64) - reference[:n])
            seconds, reps, cpu_per_wall = time_calls(lambda: predictor.predict(*args), max_s, max_row_s, min_reps)
            ms_per_person = 1e3 * seconds / batch
            rows.append({"config": config_name(path), "config_path": os.path.relpath(os.path.abspath(path), ROOT),
                         "family": family_of(path),
                         "model": f"{cfg.model.type} {('se-' if cfg.model.se else '')}{cfg.model.name}",
                         "codec": type(predictor.codec).__name__, "input_hw": [h, w],
                         "flip_test": predictor.flip_test, "batch": batch, "threads": torch.get_num_threads(),
                         "ms_per_call": round(1e3 * seconds, 3), "ms_per_person": round(ms_per_person, 4),
                         "persons_per_s": round(1e3 / ms_per_person, 2), "reps": reps,
                         "cpu_per_wall": round(cpu_per_wall, 2), "check_max_diff_px": check_px,
                         "check_max_diff_score": check_score,
                         "float32_diff_px": float(float32_diff[..., :2].max()),
                         "float32_diff_score": float(float32_diff[..., 2].max())})
            r = rows[-1]
            print(f"  {r['config']} batch {batch} threads {r['threads']}: {r['ms_per_call']:.1f} ms/call, "
                  f"{r['ms_per_person']:.2f} ms/person, {r['persons_per_s']:.1f} persons/s ({reps} reps)",
                  file=sys.stderr, flush=True)
    return rows


def run(configs, batches=BATCHES, threads=(None,), max_s=MAX_S, max_row_s=MAX_ROW_S, quick=False, inputs=None):
    """Rows (dicts) for every config x batch x threads (None: the libraries' defaults); ``quick``: one timed
    call a row; ``inputs``: ``inference_input`` by default. Thread settings are restored afterwards."""
    defaults = (torch.get_num_threads(), cv2.getNumThreads())
    inputs = inference_input(max(*batches, CHECK_BOXES)) if inputs is None else inputs
    min_reps = 1 if quick else MIN_REPS
    if quick:
        max_s = 0.0
    try:
        return [row for path in configs
                for row in config_rows(path, batches, threads, max_s, max_row_s, min_reps, defaults, inputs)]
    finally:
        set_threads(None, defaults)


def markdown(rows):
    """The rows as a markdown table."""
    lines = ["| config | model | input HxW | flip test | batch | threads | ms / call | ms / person | persons/s | "
             "reps | batched - one-by-one px, float64 / float32 |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['model']} | {r['input_hw'][0]}x{r['input_hw'][1]} | "
                     f"{'on' if r['flip_test'] else 'off'} | {r['batch']} | {r['threads']} | {r['ms_per_call']:.1f} | "
                     f"{r['ms_per_person']:.2f} | {r['persons_per_s']:.1f} | {r['reps']} | "
                     f"{r['check_max_diff_px']:.1g} / {r['float32_diff_px']:.1g} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--cfg", nargs="+", help="config files (default: one per family, FAMILIES)")
    choice.add_argument("--all", action="store_true", help="every configs/coco/*.yaml")
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES), help="persons per call")
    parser.add_argument("--threads", type=int, nargs="+", help="torch / OpenCV threads (default: theirs)")
    parser.add_argument("--max-s", type=float, default=MAX_S, help=f"time budget per row, s (default {MAX_S})")
    parser.add_argument("--max-row-s", type=float, default=MAX_ROW_S,
                        help=f"stop a row after this many s even below {MIN_REPS} calls (default {MAX_ROW_S})")
    parser.add_argument("--quick", action="store_true", help="smoke run: one timed call a row")
    parser.add_argument("--json", help="where to write the results (default: benchmarks/inference_cpu.json for a "
                                       "full run, nowhere for --quick)")
    args = parser.parse_args(argv)
    if min(args.batches) < 1 or (args.threads and min(args.threads) < 1):
        parser.error("--batches and --threads must be at least 1")
    if args.all:
        configs = sorted(glob.glob(os.path.join(ROOT, "configs", "coco", "*.yaml")))
    else:
        configs = args.cfg or [os.path.join(ROOT, p) for p in FAMILIES.values()]
    json_path = args.json or (None if args.quick else os.path.join(ROOT, "benchmarks", "inference_cpu.json"))
    began, load_start = time.perf_counter(), os.getloadavg()
    inputs = inference_input(max(*args.batches, CHECK_BOXES))
    rows = run(configs, args.batches, args.threads or (None,), args.max_s, args.max_row_s, args.quick, inputs)
    total_s = round(time.perf_counter() - began, 1)
    command = " ".join(["python tools/benchmark_inference.py"] + list(sys.argv[1:] if argv is None else argv))
    result = {"command": command, "machine": machine_facts(),
              "load_avg": {"start": load_start, "end": os.getloadavg()}, "quick": args.quick,
              "input": inputs[3],
              "timing": {"warmup": WARMUP, "min_reps": 1 if args.quick else MIN_REPS,
                         "max_s": 0.0 if args.quick else args.max_s, "max_row_s": args.max_row_s,
                         "statistic": "median", "weights": "random (initialise=False)"},
              "check": {"what": f"the first {CHECK_BOXES} boxes in one call == one at a time (batch 1), float64 "
                                f"model copy; float32_diff_*: the same comparison of each row's float32 call, "
                                f"not checked", "tolerance_px": TOLERANCE_PX, "tolerance_score": TOLERANCE_SCORE,
                        "passed": True},
              "rows": rows, "total_s": total_s}
    print(markdown(rows))
    if json_path:
        write_json(result, json_path)
        print(f"\ntotal {total_s} s; wrote {os.path.normpath(os.path.abspath(json_path))}")
    return result


if __name__ == "__main__":
    main()
