"""Config loading: defaults, and a ConfigError naming file, key path and line for bad input."""
from pathlib import Path

import pytest

from processors.config import ConfigError, load_config


def write(tmp_path, text, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


SYNTH = "data:\n  use_synthetic: true\n"


def test_defaults_filled_and_sizes_converted(tmp_path):
    cfg = load_config(write(tmp_path, SYNTH + "  input_size: [128, 96]\n  heatmap_size: [32, 24]\n"))
    assert cfg.data.input_size == [128, 96] and cfg.data.input_wh == (96, 128)
    assert cfg.data.heatmap_wh == (24, 32)
    assert cfg.optim.lr == 1e-3 and cfg.optim.milestones == [170, 200]
    assert cfg.decoder.type == "gauss_taylor" and cfg.decoder.kernel == 11
    assert cfg.model.type == "dconv" and cfg.model.num_joints == 17
    assert cfg.to_dict()["data"]["augment"]["rot_factor"] == 45.0


def test_sample_config_loads():
    cfg = load_config(str(Path(__file__).resolve().parents[1] / "configs" / "sample.yaml"))
    assert cfg.data.use_synthetic and cfg.gpus == []


@pytest.mark.parametrize("text, key, expected", [
    (SYNTH + "  bath_size: 4\n", "data.bath_size", "did you mean 'batch_size'"),
    (SYNTH + "  batch_size: four\n", "data.batch_size", "expected an integer"),
    (SYNTH + "  batch_size: 0\n", "data.batch_size", "a value > 0"),
    (SYNTH + "  flip_test: 1\n", "data.flip_test", "unknown key"),
    (SYNTH + "decoder:\n  flip_test: 1\n", "decoder.flip_test", "expected true or false"),
    (SYNTH + "decoder:\n  type: argmax\n", "decoder.type", "'basic', 'gauss_taylor'"),
    (SYNTH + "decoder:\n  kernel: 4\n", "decoder.kernel", "odd kernel"),
    (SYNTH + "  input_size: [256]\n", "data.input_size", "[height, width]"),
    (SYNTH + "  heatmap_size: [64, 64]\n", "data.heatmap_size", "aspect ratio"),
    (SYNTH + "optim:\n  milestones: [20, 10]\n", "optim.milestones", "strictly increasing"),
    (SYNTH + "optim:\n  epochs: 5\n  milestones: [10]\n", "optim.milestones", "never take effect"),
    (SYNTH + "model:\n  name: resnet19\n", "model.name", "'resnet18'"),
    (SYNTH + "model:\n  pretrained: /nonexistent/r50.pth\n", "model.pretrained", "does not exist"),
    (SYNTH + "gpus: 0\n", "gpus", "list of integers"),
    ("data:\n  train_ann: /nonexistent/train.json\n", "data.train_ann", "does not exist"),
    (SYNTH + "  boxes: file\n", "data.det_file", "detection results"),
    (SYNTH + "model_name: a/b\n", "model_name", "without '/'"),
    (SYNTH + "optim: [1, 2]\n", "optim", "mapping"),
    (SYNTH + "decoder:\n  shift_heatmap: true\n", "decoder.shift_heatmap", "renamed to 'decoder.flip_shift'"),
    (SYNTH + "loss:\n  type: joints_mse\nmodel:\n  type: rle\n", "loss.type", "trains with rle"),
    (SYNTH + "model:\n  type: rle\n  name: scnet50\n  input_size: [128, 96]\n", "model.input_size", "unknown key"),
    (SYNTH + "  input_size: [128, 96]\n  heatmap_size: [32, 24]\nmodel:\n  name: scnet50\n", "data.input_size",
     ">= 128"),
    (SYNTH + "keypoints:\n  names: [a, b, c]\n", "keypoints.flip_pairs", "in [0, 2]"),
    (SYNTH + "keypoints:\n  names: [a, b]\n  flip_pairs: [[0, 1], [1, 0]]\n", "keypoints.flip_pairs",
     "at most one pair"),
    (SYNTH + "keypoints:\n  names: [a, b]\n  flip_pairs: [[0, 1]]\n  upper_body_ids: [0]\n  skeleton: []\n",
     "keypoints.sigmas", "one OKS sigma per joint (2)"),
    (SYNTH + "keypoints:\n  flip_pairs: [[1, 2, 3]]\n", "keypoints.flip_pairs", "[int, int] pairs"),
    (SYNTH + "model:\n  num_joints: 12\n", "model.num_joints", "keypoints.names (17)"),
])
def test_bad_values_name_key_and_line(tmp_path, text, key, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert path in message and f"key '{key}'" in message and expected in message
    lines = text.splitlines()
    last = key.split(".")[-1]
    if any(line.strip().startswith(f"{last}:") for line in lines):  # keys present in the file carry a line
        line_no = next(i for i, line in enumerate(lines, 1) if line.strip().startswith(f"{last}:"))
        assert f"line {line_no}" in message


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "data: [unclosed\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_real_files_accepted(tmp_path, shared_data_dir):
    mini = shared_data_dir / "coco_mini"
    ann = mini / "annotations" / "person_keypoints_train2017.json"
    cfg = load_config(write(tmp_path, f"data:\n  train_ann: {ann}\n  train_img_root: {mini / 'train2017'}\n"
                                      f"  val_ann: {ann}\n  val_img_root: {mini / 'train2017'}\n"))
    assert cfg.data.train_ann == str(ann)


def test_readme_yaml_reference_is_the_schema():
    """README's YAML table is ``python -m processors.config``: every key, default and meaning."""
    from processors.config import markdown_table
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert markdown_table() in readme


@pytest.mark.parametrize("name", sorted(p.name for p in (Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml")))
def test_every_shipped_config_loads_and_builds(name):
    """Each config is valid (its data paths aside) and its model builds (ImageNet weights aside)."""
    import torch

    from nets import build_model
    from processors.config import Config
    path = next((Path(__file__).resolve().parents[1] / "configs").rglob(name))
    cfg = load_config(str(path), check_paths=False)
    model = build_model(Config(dict(cfg.model.to_dict(), pretrained="")), cfg.loss).eval()
    h, w = cfg.data.input_size
    with torch.no_grad():
        out = model(torch.zeros(1, 3, h, w))
    if cfg.model.type == "rle":
        assert out["coords"].shape == (1, cfg.model.num_joints, 2)
    else:
        assert out.shape == (1, cfg.model.num_joints, *cfg.data.heatmap_size)
