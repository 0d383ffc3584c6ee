"""CPU speed of the light COCO pose models: latency per crop, and end-to-end FPS on a video.

    python tools/benchmark_light_models.py [--models pp_tinypose_128x96 ...] [--frames 60] [--skip-video]
        [--det-imgsz 640] [--max-people N] [--no-flip] [--out benchmarks/light_models_cpu.json]

Latency rows time the network forward alone (no flip test, ``torch.inference_mode``) on random uint8
crops normalised as the ``Predictor`` does, after warm-up, at batch 1 and 8 with 1 and 2 torch threads:
the median of repeated timings (about 2 s each), in ms per crop. Parameters are those the forward uses
(RLE's training-only flow is left out); GFLOPs per crop are ``FlopCounterMode``'s (2 x multiply-adds).

End-to-end rows run yolov8n person detection and ``Predictor.predict`` (flip test on, as the product runs)
on ``--frames`` frames of the demo video with all cores: detector and pose ms per frame, FPS of both
together and persons per frame. A video shorter than ``--frames`` (the demo has 5) is played in a loop.
Detections are made (and timed) once and reused for every model.

Prints markdown tables and writes everything, with the machine's facts, to JSON (``--out``). The host may
be shared and noisy: compare ratios within one run rather than figures across runs. The JSON's load
averages and ``cpu_per_wall`` (process CPU time / wall time while timing) show how busy the host was.
"""
import argparse
import os
import statistics
import sys
import time

import cv2
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tools.report import machine_facts, write_json  # noqa: E402
from nets.detector import PersonDetector  # noqa: E402
from processors.inference import Predictor  # noqa: E402

SHARED = os.path.join(ROOT, "..", "shared", "data")
MODELS = {  # name: (config, weights under --weights-dir)
    "pp_tinypose_256x192": ("configs/coco/pp_tinypose_256x192.yaml",
                            "pp_tinypose_256x192/tinypose_256x192_from_ir.pth"),
    "pp_tinypose_128x96": ("configs/coco/pp_tinypose_128x96.yaml",
                           "pp_tinypose_128x96/tinypose_128x96_from_ir.pth"),
    "mobilenetv2_050_rle_192x192": ("configs/coco/mobilenetv2_050_rle_192x192.yaml",
                                    "mmpose_clean_rle_mbv2_050_192x192/rle_mbv2_050_192x192_fp32.pth"),
}
THREADS = (1, 2)
BATCHES = (1, 8)
MEASURE_S = 2.0
MAX_S = 10.0
MIN_REPS, WARMUP = 5, 3


def random_input(predictor, batch):
    """Random uint8 crops of the model's input size, normalised as the predictor does."""
    w, h = predictor.preprocess.input_wh
    generator = torch.Generator().manual_seed(0)
    crops = torch.randint(0, 256, (batch, 3, h, w), dtype=torch.uint8, generator=generator)
    return predictor.preprocess.normalize(crops)


@torch.inference_mode()
def model_facts(model, images):
    """(parameters of the modules the forward calls, GFLOPs per crop) for one forward of ``images``."""
    called = []
    hooks = [m.register_forward_pre_hook(lambda mod, _: called.append(mod)) for m in model.modules()]
    counter = FlopCounterMode(display=False)
    with counter:
        model(images)
    for hook in hooks:
        hook.remove()
    params = {id(p): p.numel() for m in called for p in m.parameters(recurse=False)}
    return sum(params.values()), counter.get_total_flops() / 1e9 / len(images)


@torch.inference_mode()
def time_forward(model, images):
    """(median ms per crop, repetitions, CPU time / wall time) of forwards of ``images`` for ``MEASURE_S``
    s and at least ``MIN_REPS`` times (unless those take over ``MAX_S`` s)."""
    for _ in range(WARMUP):
        model(images)
    times, start, cpu = [], time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - start) < MEASURE_S or (len(times) < MIN_REPS and elapsed < MAX_S):
        t = time.perf_counter()
        model(images)
        times.append(time.perf_counter() - t)
    cpu_per_wall = (time.process_time() - cpu) / (time.perf_counter() - start)
    return 1e3 * statistics.median(times) / len(images), len(times), cpu_per_wall


def latency_rows(name, predictor):
    """One row per (threads, batch) of ``name``'s forward latency."""
    params, gflops = model_facts(predictor.model, random_input(predictor, 1))
    w, h = predictor.preprocess.input_wh
    rows = []
    for threads in THREADS:
        torch.set_num_threads(threads)
        for batch in BATCHES:
            ms, reps, cpu_per_wall = time_forward(predictor.model, random_input(predictor, batch))
            rows.append({"model": name, "input_hw": [h, w], "params": params,
                         "params_all": sum(p.numel() for p in predictor.model.parameters()),
                         "gflops_per_crop": round(gflops, 4), "threads": threads, "batch": batch,
                         "ms_per_crop": round(ms, 2), "crops_per_s": round(1e3 / ms, 1), "reps": reps,
                         "cpu_per_wall": round(cpu_per_wall, 2)})
            print(f"  {name} threads {threads} batch {batch}: {ms:.2f} ms/crop ({reps} reps, "
                  f"CPU/wall {cpu_per_wall:.2f})", file=sys.stderr, flush=True)
    return rows


def read_frames(path, count):
    """``count`` frames of a video (BGR uint8), looping over it if it is shorter; and its own frame count."""
    capture = cv2.VideoCapture(path)
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    if not frames:
        sys.exit(f"error: no frame could be read from {path}")
    return [frames[i % len(frames)] for i in range(count)], len(frames)


def detect(detector_path, frames, imgsz=640, max_people=0):
    """(per-frame (boxes xyxy, scores) of persons, detector ms per frame) with ``PersonDetector`` on all
    cores; ``max_people`` > 0 keeps that many highest-scoring people a frame."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    detector = PersonDetector(detector_path, conf=0.25, imgsz=imgsz, device="cpu")

    def run(frame):
        boxes, scores = detector(frame)
        keep = np.argsort(-scores)[:max_people or None]
        return boxes[keep], scores[keep]

    torch.set_num_threads(os.cpu_count())
    for _ in range(WARMUP):
        run(frames[0])
    detections, start = [], time.perf_counter()
    for frame in tqdm(frames, desc="detector", file=sys.stderr):
        detections.append(run(frame))
    return detections, 1e3 * (time.perf_counter() - start) / len(frames)


def end_to_end_row(name, predictor, frames, detections, detector_ms, flip=True, imgsz=640):
    """Pose ms per frame of ``predictor`` (with or without the flip test) on the detected people, and the
    total FPS."""
    predictor.flip_test = flip
    busiest = max(range(len(frames)), key=lambda i: len(detections[i][0]))
    torch.set_num_threads(os.cpu_count())
    for _ in range(WARMUP):
        predictor.predict(frames[busiest], *detections[busiest])
    start, cpu = time.perf_counter(), time.process_time()
    for frame, (boxes, scores) in tqdm(list(zip(frames, detections)), desc=name, file=sys.stderr):
        predictor.predict(frame, boxes, scores)
    cpu_per_wall = (time.process_time() - cpu) / (time.perf_counter() - start)
    pose_ms = 1e3 * (time.perf_counter() - start) / len(frames)
    total_ms = detector_ms + pose_ms
    return {"model": name, "frames": len(frames), "threads": os.cpu_count(), "flip_test": flip, "det_imgsz": imgsz,
            "persons_per_frame": round(float(np.mean([len(b) for b, _ in detections])), 2),
            "detector_ms_per_frame": round(detector_ms, 1), "pose_ms_per_frame": round(pose_ms, 1),
            "total_ms_per_frame": round(total_ms, 1), "fps": round(1e3 / total_ms, 2),
            "pose_cpu_per_wall": round(cpu_per_wall, 2)}


def markdown_table(rows, columns):
    """A markdown table of ``rows`` (dicts) with ``columns`` (header, key) pairs."""
    lines = ["| " + " | ".join(h for h, _ in columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        cells = ["x".join(map(str, row[k])) if isinstance(row[k], list) else str(row[k]) for _, k in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


LATENCY_COLUMNS = [("model", "model"), ("input HxW", "input_hw"), ("params", "params"),
                   ("GFLOPs/crop", "gflops_per_crop"), ("threads", "threads"), ("batch", "batch"),
                   ("ms/crop (median)", "ms_per_crop"), ("crops/s", "crops_per_s"),
                   ("CPU/wall", "cpu_per_wall")]
E2E_COLUMNS = [("model", "model"), ("frames", "frames"), ("persons/frame", "persons_per_frame"),
               ("detector imgsz", "det_imgsz"), ("flip", "flip_test"),
               ("detector ms/frame", "detector_ms_per_frame"), ("pose ms/frame", "pose_ms_per_frame"),
               ("total ms/frame", "total_ms_per_frame"), ("FPS", "fps"),
               ("pose CPU/wall", "pose_cpu_per_wall")]


def check_files(paths):
    """Exit with a one-line error naming the first of ``paths`` that does not exist."""
    for path in paths:
        if not os.path.isfile(path):
            sys.exit(f"error: file not found: {os.path.normpath(path)}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--frames", type=int, default=60, help="video frames for the end-to-end rows")
    parser.add_argument("--skip-video", action="store_true", help="latency rows only")
    parser.add_argument("--weights-dir", default=os.path.join(SHARED, "pose_weights"))
    parser.add_argument("--detector", default=os.path.join(SHARED, "weights", "yolov8n_from_int8.pt"))
    parser.add_argument("--video", default=os.path.join(SHARED, "video", "demo.mp4"))
    parser.add_argument("--det-imgsz", type=int, default=640, help="detector input size")
    parser.add_argument("--max-people", type=int, default=0, help="keep this many people a frame (0: all)")
    parser.add_argument("--no-flip", action="store_true", help="end-to-end rows without the flip test")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "light_models_cpu.json"))
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error("--frames must be at least 1")
    weights = {name: os.path.join(args.weights_dir, MODELS[name][1]) for name in args.models}
    check_files(list(weights.values()) + ([] if args.skip_video else [args.detector, args.video]))
    began, load_at_start = time.perf_counter(), os.getloadavg()
    predictors = {name: Predictor.from_config(os.path.join(ROOT, MODELS[name][0]), path, device="cpu")
                  for name, path in weights.items()}
    latency = [row for name, predictor in predictors.items() for row in latency_rows(name, predictor)]
    print(markdown_table(latency, LATENCY_COLUMNS), flush=True)
    end_to_end = []
    if not args.skip_video:
        frames, video_frames = read_frames(args.video, args.frames)
        detections, detector_ms = detect(args.detector, frames, args.det_imgsz, args.max_people)
        end_to_end = [end_to_end_row(name, predictor, frames, detections, detector_ms, not args.no_flip,
                                     args.det_imgsz) for name, predictor in predictors.items()]
        print("\n" + markdown_table(end_to_end, E2E_COLUMNS), flush=True)
    total_s = round(time.perf_counter() - began, 1)
    report = {"machine": machine_facts(), "load_avg": {"start": load_at_start, "end": os.getloadavg()},
              "measure_s": MEASURE_S, "latency": latency, "end_to_end": end_to_end, "total_s": total_s}
    if not args.skip_video:
        report["video"] = {"path": os.path.normpath(args.video), "frames": video_frames}
    write_json(report, args.out)
    print(f"\ntotal {total_s} s; wrote {os.path.normpath(os.path.abspath(args.out))}")
    return report


if __name__ == "__main__":
    main()
