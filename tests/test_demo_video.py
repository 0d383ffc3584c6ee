"""``demo_video.py`` on the real video, images and weights of ``../shared/data`` (skipped without them): the
output video and JSON lines, track ids, image folders, a checkpoint's stored config and one-line errors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import demo_video
from nets import build_model, load_pose_weights
from processors.config import load_config

REPO_ROOT = Path(__file__).resolve().parents[1]
CFG_128 = "configs/coco/pp_tinypose_128x96.yaml"


@pytest.fixture(scope="module")
def data(shared_data_dir):
    """Paths of the shared files the demo uses."""
    paths = {"video": shared_data_dir / "video" / "demo.mp4",
             "pose": shared_data_dir / "pose_weights" / "pp_tinypose_128x96" / "tinypose_128x96_from_ir.pth",
             "detector": shared_data_dir / "weights" / "yolov8n_from_int8.pt",
             "images": sorted((shared_data_dir / "mmpose_coco").glob("*.jpg"))[:2]}
    missing = [str(p) for p in (paths["video"], paths["pose"], paths["detector"]) if not p.is_file()]
    if missing or len(paths["images"]) < 2:
        pytest.skip(f"shared demo data missing: {missing or 'mmpose_coco images'}")
    return paths


def demo_args(data, source, *extra, weights=None, cfg=CFG_128):
    argv = ["--source", str(source), "--weights", str(weights or data["pose"]),
            "--detector", str(data["detector"]), "--device", "cpu", *extra]
    return argv + (["--cfg", str(REPO_ROOT / cfg)] if cfg else [])


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def check_people(record, joints=17):
    for person in record["people"]:
        assert len(person["box"]) == 4 and all(isinstance(v, (int, float)) for v in person["box"])
        assert len(person["keypoints"]) == joints
        assert all(len(k) == 3 and all(isinstance(v, (int, float)) for v in k) for k in person["keypoints"])
        assert isinstance(person["score"], float)


@pytest.fixture(scope="module")
def video_run(data, tmp_path_factory):
    """The demo on the whole demo video with ByteTrack: (summary, output video, JSON lines)."""
    out = tmp_path_factory.mktemp("demo_video")
    args = demo_args(data, data["video"], "--output", str(out / "out.mp4"), "--json", str(out / "out.jsonl"))
    summary = demo_video.run(demo_video.parse_args(args))
    return summary, out / "out.mp4", read_jsonl(out / "out.jsonl")


def test_video_output_matches_input(data, video_run):
    summary, video, _ = video_run
    source, result = cv2.VideoCapture(str(data["video"])), cv2.VideoCapture(str(video))
    try:
        props = [(cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FRAME_WIDTH),
                  cap.get(cv2.CAP_PROP_FRAME_HEIGHT), cap.get(cv2.CAP_PROP_FPS)) for cap in (source, result)]
        frames = 0
        while result.read()[0]:
            frames += 1
    finally:
        source.release()
        result.release()
    assert props[1] == props[0], "output video: frame count, size and fps as the input's"
    assert frames == props[0][0] == summary["frames"] == 5
    assert summary["people_per_frame"] >= 5 and summary["detector_calls"] == 5
    assert summary["fps"] > 0 and summary["pose_ms_per_person"] > 0 and summary["dominant"]


def test_video_json_lines_and_track_ids(video_run):
    _, _, records = video_run
    assert [r["frame"] for r in records] == list(range(5))
    for record in records:
        assert record["people"], f"frame {record['frame']}: nobody found on a street of 10+ people"
        check_people(record)
        ids = [p["track_id"] for p in record["people"]]
        assert all(isinstance(i, int) for i in ids) and len(set(ids)) == len(ids)
    first, last = ({p["track_id"] for p in records[k]["people"]} for k in (1, 4))
    assert len(first & last) >= 0.6 * len(first), f"track ids of frame 1 {first} lost by frame 4 {last}"


def test_det_every_reuses_track_boxes_and_smooths(data, tmp_path):
    args = demo_args(data, data["video"], "--det-every", "2", "--smooth", "--max-frames", "3",
                     "--json", str(tmp_path / "out.jsonl"))
    summary = demo_video.run(demo_video.parse_args(args))
    records = read_jsonl(tmp_path / "out.jsonl")
    assert summary["frames"] == 3 and summary["detector_calls"] == 2 and len(records) == 3
    boxes = [{p["track_id"]: p["box"] for p in r["people"]} for r in records[:2]]
    assert boxes[0] and boxes[1] == boxes[0], "frame 1 reuses the tracks' boxes of frame 0"
    for record in records:
        check_people(record)


def test_image_folder(data, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for path in data["images"]:
        assert cv2.imwrite(str(folder / path.name), cv2.imread(str(path)))
    out = tmp_path / "annotated"
    args = demo_args(data, folder, "--tracker", "none", "--output", str(out),
                     "--json", str(tmp_path / "o.jsonl"))
    summary = demo_video.run(demo_video.parse_args(args))
    assert summary["frames"] == 2
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in data["images"])
    for path in data["images"]:
        annotated, original = cv2.imread(str(out / path.name)), cv2.imread(str(path))
        assert annotated.shape == original.shape and np.abs(annotated.astype(int) - original).sum() > 0
    records = read_jsonl(tmp_path / "o.jsonl")
    assert [r["image"] for r in records] == [p.name for p in data["images"]]
    assert all(r["people"] for r in records)
    for record in records:
        check_people(record)
        assert all(p["track_id"] is None for p in record["people"])


def test_checkpoint_uses_stored_config(data, tmp_path, video_run):
    cfg = load_config(str(REPO_ROOT / CFG_128), check_paths=False)
    model = build_model(cfg.model, initialise=False)
    load_pose_weights(model, str(data["pose"]))
    checkpoint = tmp_path / "best.pth"
    torch.save({"model": model.state_dict(), "config": cfg.to_dict()}, checkpoint)
    args = demo_args(data, data["video"], "--max-frames", "2", "--json", str(tmp_path / "out.jsonl"),
                     weights=checkpoint, cfg=None)
    summary = demo_video.run(demo_video.parse_args(args))
    assert summary["frames"] == 2 and summary["people_per_frame"] >= 5
    records = read_jsonl(tmp_path / "out.jsonl")
    for mine, reference in zip(records, video_run[2][:2]):
        assert [p["track_id"] for p in mine["people"]] == [p["track_id"] for p in reference["people"]]
        np.testing.assert_allclose([p["keypoints"] for p in mine["people"]],
                                   [p["keypoints"] for p in reference["people"]], atol=0.02)


EXPECTED = {"no source": "missing.mp4", "no weights": "missing.pth", "foreign weights without cfg": "--cfg",
            "no weights nor cfg": "--weights"}


@pytest.mark.parametrize("case", EXPECTED)
def test_errors_are_one_line(data, tmp_path, capsys, case):
    argv = {"no source": demo_args(data, tmp_path / "missing.mp4"),
            "no weights": demo_args(data, data["video"], weights=tmp_path / "missing.pth"),
            "foreign weights without cfg": demo_args(data, data["video"], cfg=None),
            "no weights nor cfg": ["--source", str(data["video"]), "--detector", str(data["detector"])]}[case]
    assert demo_video.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("demo_video.py: error:"), err
    assert EXPECTED[case] in err


def test_command_line_bad_source_exit_code(data, tmp_path):
    """The real command line: exit code 2, one line on stderr, no traceback."""
    bad = tmp_path / "not_a_video.mp4"
    bad.write_text("not a video")
    proc = subprocess.run([sys.executable, "demo_video.py", *demo_args(data, bad)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "YOLO_OFFLINE": "1", "TOPPOSE_OFFLINE": "1"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"demo_video.py: error: cannot open source '{bad}' as a video", proc.stderr


def test_one_euro_smooths_jitter_and_follows_motion():
    rng = np.random.default_rng(0)
    still, ramp = demo_video.OneEuro(1.0, 0.02), demo_video.OneEuro(1.0, 0.02)
    jitter = [still(np.array([100.0]) + rng.normal(0, 2, 1), t / 30) for t in range(60)]
    follow = [ramp(np.array([10.0 * t]), t / 30) for t in range(60)]  # 300 pixels per second
    assert np.std(jitter[30:]) < 0.5 * 2
    assert abs(follow[-1][0] - 590.0) < 30
