"""Video demo: YOLO person boxes, tracked, -> TopPose keypoints -> annotated video or images + JSON lines.

    python demo_video.py --source SRC --weights POSE.pth [--cfg CFG] --detector DET.pt --output out.mp4
        --json out.jsonl [--det-every N] [--tracker bytetrack|botsort|none] [--flip] [--smooth]
        [--smooth-min-cutoff HZ] [--smooth-beta B] [--conf C] [--imgsz S] [--device D] [--show]
        [--max-frames N] [--kpt-thr T]

``SRC``: a webcam index (``0``), a video file, an image, a folder of images (sorted by name) or a stream URL
(anything ``cv2.VideoCapture`` opens). A video comes out as an mp4v video of the input's fps and frame size;
images come out as annotated images of the same names in the ``--output`` folder (when ``--output`` names a
file such as ``out.mp4``: in the folder ``out`` next to it; one image may go to ``--output out.jpg``).
``--json`` writes one line per frame: ``{"frame": i, "people": [{"track_id", "box" [x1, y1, x2, y2],
"score", "box_score", "keypoints" [[x, y, score] x J]}]}`` (``"image"`` names the file of an image source).

The pose config defaults to the one a TopPose checkpoint (``weights/<run>/best.pth``) stores; foreign
weights (PP-TinyPose's ``tinypose_256x192_from_ir.pth``, the default model's) need ``--cfg``. The detector
runs every ``--det-every`` frames through ultralytics' own ByteTrack / BoT-SORT (``--tracker``), which shows
confirmed tracks only (a newcomer from its second detection); the frames in between reuse each track's last
box. ``--smooth`` filters each track's keypoints with a One-Euro filter.
Errors in the source, the weights or the output end with one line on stderr and exit code 2.

Licence: person detection and tracking use the ``ultralytics`` package and YOLO weights, which are AGPL-3.0.
"""
import argparse
import itertools
import json
import math
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from datasets.draw import draw_skeleton, write_image
from nets.detector import DetectorError, PersonDetector
from nets.pretrained import PretrainedWeightsError
from processors.checkpoint import stored_config
from processors.config import ConfigError, load_config, validate
from processors.inference import Predictor

DEFAULT_CFG = "configs/coco/pp_tinypose_256x192.yaml"
IMAGE_EXTS = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
DEFAULT_FPS = 30.0  # for a writer whose source reports no frame rate (some webcams and streams)
FPS_MOMENTUM = 0.9  # smoothing of the FPS overlay


class DemoError(RuntimeError):
    """A source, output or model the demo cannot use: one line on stderr, exit code 2."""


class Source:
    """Frames of a webcam, stream, video file, image or image folder.

    ``kind``: ``"images"``, ``"video"`` (a file) or ``"stream"`` (webcam, URL); ``fps`` and ``total`` (frames)
    are None when unknown; ``frames()`` yields ``(image name or None, BGR frame)``.
    """

    def __init__(self, kind, capture=None, paths=(), fps=None, total=None):
        self.kind, self.capture, self.paths, self.fps, self.total = kind, capture, list(paths), fps, total

    def frames(self):
        if self.kind == "images":
            for path in self.paths:
                frame = cv2.imread(str(path))
                if frame is None:
                    tqdm.write(f"warning: cannot read image {path}: skipped", file=sys.stderr)
                    continue
                yield path.name, frame
            return
        while True:
            ok, frame = self.capture.read()
            if not ok:
                return
            yield None, frame

    def close(self):
        if self.capture is not None:
            self.capture.release()


def open_source(spec):
    """``Source`` of a webcam index, image, image folder, video file or stream URL; ``DemoError`` if none."""
    path = Path(spec)
    if path.is_dir():
        paths = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
        if not paths:
            raise DemoError(f"source folder '{spec}' holds no images ({' '.join(IMAGE_EXTS)})")
        return Source("images", paths=paths, total=len(paths))
    if path.is_file() and path.suffix.lower() in IMAGE_EXTS:
        if not cv2.haveImageReader(str(path)):
            raise DemoError(f"cannot read image '{spec}'")
        return Source("images", paths=[path], total=1)
    stream = spec.isdigit() or "://" in spec
    if not stream and not path.exists():
        raise DemoError(f"source '{spec}' not found (give a webcam index, a video, an image, a folder of "
                        f"images or a stream URL)")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's and OpenCV's messages would add lines
    log_level = cv2.utils.logging.getLogLevel()                # to the one-line error
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        capture = cv2.VideoCapture(int(spec) if spec.isdigit() else spec)
    finally:
        cv2.utils.logging.setLogLevel(log_level)
    if not capture.isOpened():
        capture.release()
        raise DemoError(f"cannot open source '{spec}' as a {'webcam or stream' if stream else 'video'}")
    fps, count = capture.get(cv2.CAP_PROP_FPS), int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    return Source("stream" if stream else "video", capture, fps=fps if fps > 0 else None,
                  total=count if count > 0 and not stream else None)


class Writer:
    """Annotated frames into a video (``mode="video"``: mp4v, opened on the first frame with its size), one
    image file (``"file"``) or a folder of images named as the inputs (``"folder"``)."""

    def __init__(self, path, mode, fps=DEFAULT_FPS):
        self.path, self.mode, self.fps, self.video = Path(path), mode, fps, None

    def write(self, frame, name=None):
        if self.mode == "file":
            write_image(self.path, frame)
        elif self.mode == "folder":
            write_image(self.path / name, frame)
        else:
            if self.video is None:
                height, width = frame.shape[:2]
                self.video = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                             (width, height))
                if not self.video.isOpened():
                    raise DemoError(f"cannot write video '{self.path}' with the mp4v codec")
            self.video.write(frame)

    def close(self):
        if self.video is not None:
            self.video.release()


def open_writer(output, source):
    """``Writer`` for ``--output`` (None: no annotated output) suited to the source's kind."""
    if output is None:
        return None
    path = Path(output)
    if source.kind != "images":
        if path.is_dir() or not path.suffix or path.suffix.lower() in IMAGE_EXTS:
            raise DemoError(f"--output '{output}' must be a video file (e.g. out.mp4) for a video source")
        path.parent.mkdir(parents=True, exist_ok=True)
        return Writer(path, "video", source.fps or DEFAULT_FPS)
    if path.suffix.lower() in IMAGE_EXTS and len(source.paths) == 1:
        path.parent.mkdir(parents=True, exist_ok=True)
        return Writer(path, "file")
    folder = path.with_suffix("") if path.suffix and not path.is_dir() else path
    if any(p.parent.resolve() == folder.resolve() for p in source.paths):
        raise DemoError(f"--output folder '{folder}' holds the input images: choose another folder")
    folder.mkdir(parents=True, exist_ok=True)
    return Writer(folder, "folder")


def pose_config(cfg_path, weights):
    """The pose ``Config``: ``--cfg``, else the one stored in the TopPose checkpoint ``weights``."""
    if weights and not os.path.isfile(weights):
        raise DemoError(f"pose weights '{weights}' not found")
    if cfg_path:
        return load_config(cfg_path, check_paths=False)
    if not weights:
        raise DemoError(f"no pose model: pass --weights (the default model is PP-TinyPose 256x192, --cfg "
                        f"{DEFAULT_CFG}, whose weights tinypose_256x192_from_ir.pth are not bundled)")
    stored = stored_config(weights)
    if stored is None:
        raise DemoError(f"'{weights}' holds no TopPose config (a foreign or bare weight file): pass --cfg "
                        f"(for PP-TinyPose 256x192: --cfg {DEFAULT_CFG})")
    return validate(stored, f"{weights} (stored config)", check_paths=False)


def open_json(path):
    """The JSON lines file ``--json`` (its folder made), or None without one."""
    if not path:
        return None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return open(path, "w", encoding="utf-8")


class OneEuro:
    """One-Euro filter (Casiez et al., CHI 2012) of an array over time ``t`` (seconds): a low-pass filter
    whose cutoff (Hz) rises from ``min_cutoff`` by ``beta`` x the filtered speed (units per second), so jitter
    at rest is smoothed away and fast motion is followed with little lag."""

    def __init__(self, min_cutoff=1.0, beta=0.02, d_cutoff=1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.t = self.x = self.dx = None

    @staticmethod
    def _alpha(cutoff, dt):
        return 1.0 / (1.0 + 1.0 / (2 * math.pi * cutoff * dt))

    def __call__(self, x, t):
        x = np.asarray(x, np.float64)
        if self.t is None:
            self.t, self.x, self.dx = t, x, np.zeros_like(x)
            return x
        dt = max(t - self.t, 1e-6)
        self.dx = self.dx + self._alpha(self.d_cutoff, dt) * ((x - self.x) / dt - self.dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self.dx)
        self.x, self.t = self.x + self._alpha(cutoff, dt) * (x - self.x), t
        return self.x


def device_name(device):
    """``--device`` for torch and ultralytics alike: a bare GPU index ``0`` becomes ``cuda:0``."""
    return f"cuda:{device}" if device is not None and device.isdigit() else device


def load_models(args, cfg):
    """``(Predictor, PersonDetector)`` of the command line; ``cfg`` the pose ``Config``."""
    device = device_name(args.device)
    predictor = Predictor.from_config(cfg, args.weights, device=device)
    predictor.flip_test = args.flip
    detector = PersonDetector(args.detector, conf=args.conf or 0.25, imgsz=args.imgsz, device=device)
    return predictor, detector


def detect(detector, frame, tracker, conf):
    """``(boxes [N, 4] xyxy, scores [N], track ids)`` of the people in ``frame``, clipped to it; the ids are
    None without a tracker, and only confirmed tracks are kept with one."""
    if tracker == "none":
        boxes, scores = detector(frame)
        ids = np.full(len(boxes), -1)
    else:
        boxes, scores, ids = detector.track(frame, tracker, conf)
    height, width = frame.shape[:2]
    boxes = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)
    keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
    return boxes[keep], scores[keep].astype(np.float32), [None if i < 0 else int(i) for i in ids[keep]]


def frame_record(index, name, boxes, box_scores, scores, ids, keypoints):
    """The JSON line of one frame."""
    people = [{"track_id": i, "box": [round(float(v), 2) for v in box], "score": round(float(s), 4),
               "box_score": round(float(b), 4),
               "keypoints": [[round(float(x), 2), round(float(y), 2), round(float(c), 4)] for x, y, c in kps]}
              for box, b, s, i, kps in zip(boxes, box_scores, scores, ids, keypoints)]
    record = {"frame": index, "people": people}
    if name is not None:
        record["image"] = name
    return record


def put_label(frame, text, x, y, scale):
    """White ``text`` on a black patch with its bottom-left corner at (x, y), kept inside the frame."""
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = int(min(max(x, 0), frame.shape[1] - w - 2)), int(max(y, h + 2))
    cv2.rectangle(frame, (x, y - h - 2), (x + w + 2, y + base), (0, 0, 0), -1)
    cv2.putText(frame, text, (x + 1, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def draw_frame(frame, boxes, scores, ids, keypoints, meta, kpt_thr, fps):
    """Boxes labelled with track ids (scores without a tracker), skeletons and an FPS line, in place."""
    radius = max(2, round(max(frame.shape[:2]) / 320))
    for box, score, track_id, kps in zip(boxes, scores, ids, keypoints):
        x1, y1, x2, y2 = box
        draw_skeleton(frame, kps, thresh=kpt_thr, radius=radius, box=(x1, y1, x2 - x1, y2 - y1),
                      keypoints=meta, thickness=max(1, radius // 2 + 1))
        put_label(frame, f"#{track_id}" if track_id is not None else f"{score:.2f}", x1, y1 - 2, 0.45)
    put_label(frame, f"{fps:.1f} FPS  {len(boxes)} people", 6, 26, 0.7)
    return frame


def check_display():
    """``--show`` needs a window: fail early, since OpenCV's Qt back end aborts the process without one."""
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if sys.platform.startswith("linux") and not display:
        raise DemoError("--show needs a display (DISPLAY is not set)")


class Stats:
    """Counts and times of a run: frames, people, detector calls and seconds, pose seconds, FPS overlay."""

    def __init__(self):
        self.frames = self.people = self.det_calls = 0
        self.det_s = self.pose_s = self.fps = 0.0
        self.start = self.last = time.perf_counter()

    def restart(self):
        """Start the clock now (after the models are loaded)."""
        self.start = self.last = time.perf_counter()

    def tick(self):
        """The FPS of the overlay: a moving average of the rate since the last tick."""
        now = time.perf_counter()
        rate = 1 / max(now - self.last, 1e-9)
        self.fps = FPS_MOMENTUM * self.fps + (1 - FPS_MOMENTUM) * rate if self.fps else rate
        self.last = now
        return self.fps

    def frame_done(self, people):
        """Count a frame of ``people`` (once it is written)."""
        self.frames, self.people = self.frames + 1, self.people + people

    def summary(self, source_spec, stopped=None):
        """People per frame, detector ms per frame, pose ms per person, FPS and the part that dominates."""
        wall_s, n = time.perf_counter() - self.start, max(self.frames, 1)
        parts = {"the detector": self.det_s, "the pose model": self.pose_s,
                 "reading, drawing and writing": wall_s - self.det_s - self.pose_s}
        dominant = max(parts, key=parts.get)
        return {"source": source_spec, "frames": self.frames, "people_per_frame": self.people / n,
                "detector_calls": self.det_calls, "detector_ms_per_frame": 1000 * self.det_s / n,
                "pose_ms_per_person": 1000 * self.pose_s / max(self.people, 1),
                "pose_ms_per_frame": 1000 * self.pose_s / n, "fps": self.frames / wall_s,
                "dominant": dominant, "dominant_share": parts[dominant] / wall_s, "stopped": stopped}


def print_summary(s):
    print(f"{s['source']}: {s['frames']} frames, {s['people_per_frame']:.1f} people/frame; detector "
          f"{s['detector_ms_per_frame']:.1f} ms/frame ({s['detector_calls']} calls), pose "
          f"{s['pose_ms_per_person']:.1f} ms/person ({s['pose_ms_per_frame']:.1f} ms/frame); "
          f"{s['fps']:.2f} FPS; {s['dominant']} dominates ({100 * s['dominant_share']:.0f}% of the time)"
          + (f"; stopped: {s['stopped']}" if s["stopped"] else ""))


class PoseTracker:
    """People of successive frames: boxes from the detector (and tracker) when asked, else each track's
    last box; keypoints of every box; One-Euro smoothing per track id with ``args.smooth``. Times go to
    ``stats``."""

    def __init__(self, predictor, detector, args, fps, stats):
        self.predictor, self.detector, self.args, self.fps, self.stats = predictor, detector, args, fps, stats
        self.new_filter = lambda: OneEuro(args.smooth_min_cutoff, args.smooth_beta)
        self.boxes, self.box_scores, self.ids = np.zeros((0, 4), np.float32), np.zeros(0, np.float32), []
        self.smoothers = {}

    def __call__(self, frame, index, run_detector):
        """``(boxes, box scores, track ids, keypoints [N, J, 3], person scores)`` of frame ``index``."""
        if run_detector:
            t0 = time.perf_counter()
            people = detect(self.detector, frame, self.args.tracker, self.args.conf)
            self.boxes, self.box_scores, self.ids = people
            self.stats.det_s += time.perf_counter() - t0
            self.stats.det_calls += 1
        t0 = time.perf_counter()
        keypoints, scores = self.predictor.predict(frame, self.boxes, self.box_scores)
        self.stats.pose_s += time.perf_counter() - t0
        if self.args.smooth:
            self.smoothers = {i: self.smoothers.get(i) or self.new_filter() for i in self.ids}
            for track_id, kps in zip(self.ids, keypoints):
                kps[:, :2] = self.smoothers[track_id](kps[:, :2], index / self.fps)
        return self.boxes, self.box_scores, self.ids, keypoints, scores


def process(args, source, pose_tracker, writer, json_file, bar, stats):
    """Annotate the source's frames (up to ``--max-frames``); returns why it stopped early, or None."""
    for index, (name, frame) in enumerate(itertools.islice(source.frames(), args.max_frames)):
        run_detector = source.kind == "images" or index % args.det_every == 0
        boxes, box_scores, ids, keypoints, scores = pose_tracker(frame, index, run_detector)
        if json_file is not None:
            record = frame_record(index, name, boxes, box_scores, scores, ids, keypoints)
            json_file.write(json.dumps(record) + "\n")
        meta = pose_tracker.predictor.keypoints
        draw_frame(frame, boxes, scores, ids, keypoints, meta, args.kpt_thr, stats.tick())
        if writer is not None:
            writer.write(frame, name)
        stats.frame_done(len(boxes))
        bar.update()
        if args.show:
            cv2.imshow("TopPose", frame)
            if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                return "q pressed"
    return None


def run(args):
    """Run the demo of parsed ``args``; returns the summary dict (``Stats.summary``)."""
    if args.show:
        check_display()
    cfg = pose_config(args.cfg, args.weights)
    source = open_source(args.source)
    writer = json_file = bar = None
    stats, stopped = Stats(), None
    try:
        predictor, detector = load_models(args, cfg)
        writer = open_writer(args.output, source)
        json_file = open_json(args.json)
        known = [n for n in (source.total, args.max_frames) if n]
        total = min(known) if known else None
        bar = tqdm(total=total, unit="frame", disable=source.kind == "stream")
        pose_tracker = PoseTracker(predictor, detector, args, source.fps or DEFAULT_FPS, stats)
        stats.restart()  # the figures leave model loading out
        stopped = process(args, source, pose_tracker, writer, json_file, bar, stats)
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        source.close()
        for resource in (bar, writer, json_file):
            if resource is not None:
                resource.close()
        if args.show:
            cv2.destroyAllWindows()
    return stats.summary(args.source, stopped)


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", required=True, help="webcam index, video, image, image folder or stream URL")
    p.add_argument("--weights", help="pose weights: a TopPose checkpoint, or other weights with --cfg")
    p.add_argument("--cfg", help="pose YAML (default: the config stored in a TopPose checkpoint)")
    p.add_argument("--detector", default="yolov8n.pt", help="ultralytics YOLO weights (default yolov8n.pt)")
    p.add_argument("--output", help="annotated video (out.mp4), or folder of annotated images for images")
    p.add_argument("--json", help="JSON lines file, one line per frame")
    p.add_argument("--det-every", type=positive_int, default=1,
                   help="run the detector every N frames; in between, tracks keep their last box (default 1)")
    p.add_argument("--tracker", choices=("bytetrack", "botsort", "none"), default="bytetrack",
                   help="ultralytics tracker giving the track ids (default bytetrack; none: no ids)")
    p.add_argument("--flip", action="store_true", help="flip test (adds the mirrored crop: 2x pose time)")
    p.add_argument("--smooth", action="store_true", help="One-Euro filter of each track's keypoints")
    p.add_argument("--smooth-min-cutoff", type=float, default=1.0,
                   help="One-Euro cutoff at rest, Hz (lower: smoother, more lag; default 1.0)")
    p.add_argument("--smooth-beta", type=float, default=0.02,
                   help="One-Euro cutoff increase per pixel/s of speed (higher: less lag; default 0.02)")
    p.add_argument("--conf", type=float, help="detector score threshold (default 0.25; with a tracker 0.1, "
                                              "ultralytics' default: low boxes only extend tracks)")
    p.add_argument("--imgsz", type=int, default=640, help="detector input size (default 640)")
    p.add_argument("--device", help="cpu, 0 or cuda:0 (default: the GPU when there is one)")
    p.add_argument("--show", action="store_true", help="show the frames in a window (q quits)")
    p.add_argument("--max-frames", type=positive_int, help="stop after N frames")
    p.add_argument("--kpt-thr", type=float, default=0.3, help="joints scoring below it are not drawn (0.3)")
    args = p.parse_args(argv)
    if args.smooth and args.tracker == "none":
        p.error("--smooth filters per track id: it needs --tracker bytetrack or botsort")
    return args


def main(argv=None):
    """Command line; returns the exit code (2: unusable source, weights or output; 130: Ctrl-C)."""
    args = parse_args(argv)
    try:
        summary = run(args)
    except (DemoError, DetectorError, ConfigError, PretrainedWeightsError, OSError) as e:
        print(f"demo_video.py: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print_summary(summary)
    return 130 if summary["stopped"] == "interrupted" else 0


if __name__ == "__main__":
    sys.exit(main())
