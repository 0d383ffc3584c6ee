"""``PersonDetector``: person boxes from an Ultralytics YOLO model (YOLOv5u, YOLOv8, YOLO11, YOLO26 and the
export formats the ``ultralytics`` package reads), for detector-box evaluation and the video demo::

    detector = PersonDetector("yolov8n.pt")               # a path, or a name ultralytics downloads once
    boxes, scores = detector(image_bgr)                    # [N, 4] x1, y1, x2, y2 and [N], float32 numpy
    batch = detector([image_a, image_b])                   # a list of (boxes, scores), one per image

Licence: the ``ultralytics`` package and its YOLO weights are AGPL-3.0.

Offline (``YOLO_OFFLINE=1`` or ``TOPPOSE_OFFLINE=1``), a name that is not on disk fails at once with the
file to fetch and where to put it; online, a download that does not finish within ``DOWNLOAD_TIMEOUT_S``
fails the same way instead of hanging. Original YOLOv5 checkpoints (the ``ultralytics/yolov5``
repository's ``yolov5s.pt``), which the ``ultralytics`` package cannot read, are recognised and refused
with what to use instead.
"""
import os
import socket
import zipfile

import numpy as np
import torch

PERSON = 0  # COCO class id of "person" in YOLO models
DOWNLOAD_TIMEOUT_S = 30
RELEASES = "https://github.com/ultralytics/assets/releases"


class DetectorError(RuntimeError):
    """The detector's weights cannot be found, fetched or read."""


def is_original_yolov5(path):
    """True for a checkpoint of the ``ultralytics/yolov5`` repository (its pickle names ``models.yolo``)."""
    try:
        with zipfile.ZipFile(path) as z:
            pickle = next((z.read(n) for n in z.namelist() if n.endswith("data.pkl")), b"")
    except (OSError, zipfile.BadZipFile):
        return False
    return b"models.yolo" in pickle and b"ultralytics.nn" not in pickle


def _resolve(weights):
    """A local path for ``weights``, or the name itself when ultralytics may download it."""
    from ultralytics.utils import SETTINGS
    if os.path.exists(weights):
        return weights
    if os.sep in weights or "/" in weights:
        raise DetectorError(f"detector weights '{weights}' not found")
    cached = os.path.join(SETTINGS["weights_dir"], weights)
    if os.path.exists(cached):
        return cached
    if os.environ.get("YOLO_OFFLINE") == "1" or os.environ.get("TOPPOSE_OFFLINE") == "1":
        raise DetectorError(f"detector weights '{weights}' are not on disk and downloads are off (YOLO_OFFLINE / "
                            f"TOPPOSE_OFFLINE): fetch {weights} from {RELEASES} and pass its path, or put it at "
                            f"{os.path.abspath(cached)}")
    return weights


class PersonDetector:
    """Person boxes of YOLO ``weights``; ``conf`` / ``iou`` are the score and NMS thresholds, ``max_det`` the
    most boxes per image, ``imgsz`` the inference size, ``device`` e.g. ``"cpu"`` or ``"cuda:0"`` (None:
    ultralytics' choice)."""

    def __init__(self, weights, conf=0.25, iou=0.7, max_det=100, imgsz=640, device=None):
        weights = str(weights)
        path = _resolve(weights)
        if os.path.isfile(path) and is_original_yolov5(path):
            raise DetectorError(f"'{weights}' is an original YOLOv5 checkpoint (ultralytics/yolov5 repository), "
                                f"which the ultralytics package cannot read: use its YOLOv5u version (yolov5nu.pt, "
                                f"yolov5su.pt, ... from {RELEASES}; same sizes, higher AP) or YOLOv8 / YOLO11 weights")
        from ultralytics import YOLO
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:
            self.model = YOLO(path)
            names = self.model.names
        except Exception as e:  # download failures, unreadable or foreign files
            raise DetectorError(f"cannot load detector weights '{weights}': {str(e).strip()[:300]}") from None
        finally:
            socket.setdefaulttimeout(previous)
        if not isinstance(names, dict) or "person" not in str(names.get(PERSON, "")).lower():
            raise DetectorError(f"'{weights}' has no COCO 'person' class 0 (classes: {self.model.names})")
        self.weights = weights
        self.settings = {"conf": conf, "iou": iou, "max_det": max_det, "imgsz": imgsz}
        self.device = device

    def __call__(self, images):
        """Boxes of one image (H x W x 3 uint8 BGR, as OpenCV reads it) -> ``(boxes [N, 4] xyxy, scores [N])``;
        a list of images -> a list of such pairs."""
        single = isinstance(images, np.ndarray)
        batch = [images] if single else list(images)
        for k, image in enumerate(batch):
            if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3):
                raise ValueError(f"image {k} must be an H x W x 3 uint8 BGR array, got "
                                 f"{getattr(image, 'dtype', type(image))} {getattr(image, 'shape', '')}")
        results = self._run(self.model.predict, batch, **self.settings) if batch else []
        out = [(r.boxes.xyxy.cpu().numpy().astype(np.float32), r.boxes.conf.cpu().numpy().astype(np.float32))
               for r in results]
        return out[0] if single else out

    def track(self, image, tracker="bytetrack", conf=None):
        """Boxes of one video frame with ultralytics' ``tracker`` (``bytetrack`` or ``botsort``, state kept
        between calls): ``(boxes [N, 4], scores [N], track ids [N])`` of the confirmed tracks only. ``conf``
        None: the tracker's own low threshold (low boxes only extend existing tracks)."""
        settings = {**self.settings, "conf": conf}
        found = self._run(self.model.track, image, persist=True, tracker=f"{tracker}.yaml", **settings)[0].boxes
        if found.id is None:  # no confirmed track yet
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
        return (found.xyxy.cpu().numpy().astype(np.float32), found.conf.cpu().numpy().astype(np.float32),
                found.id.cpu().numpy().astype(np.int64))

    def _run(self, call, images, **settings):
        threads = torch.get_num_threads()
        try:
            return call(images, classes=[PERSON], verbose=False, device=self.device, **settings)
        finally:  # ultralytics sets torch's CPU threads to cores - 1, which would slow the pose model after it
            torch.set_num_threads(threads)
