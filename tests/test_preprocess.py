"""Per-model preprocessing (``data.*``): UDP warp, normalisation, colour order, box rules; corner-origin RLE."""
import numpy as np
import pytest
import torch

from datasets.preprocess import Preprocess
from datasets.transforms import affine_transform, clean_bbox, get_affine_transform, udp_affine_transform
from decoders import RegressionCodec


def test_udp_warp_maps_the_padded_box_onto_the_pixel_grid():
    pre = Preprocess((192, 256), warp="udp")
    center, scale = pre.center_scale([100.0, 50.0, 150.0, 300.0])
    half = scale * 200 / 2
    corners = [center - half, center + half, center]
    np.testing.assert_allclose(affine_transform(np.array(corners), pre.transform(center, scale)),
                               [[0, 0], [191, 255], [95.5, 127.5]], atol=1e-3)
    # HRNet's warp maps the same box onto [0, W] x [0, H] instead.
    hrnet = affine_transform(np.array(corners), get_affine_transform(center, scale, 0, (192, 256)))
    np.testing.assert_allclose(hrnet, [[0, 0], [192, 256], [96, 128]], atol=1e-3)


def test_udp_rotation_turns_about_the_box_centre():
    trans = udp_affine_transform([300.0, 200.0], [1.0, 1.0], 90, (201, 201))
    out = affine_transform(np.array([[300.0, 200.0], [300.0, 150.0]]), trans)
    # The centre stays in the middle; a point above it moves sideways, 50 px * 200/200.
    np.testing.assert_allclose(out[0], [100, 100], atol=1e-4)
    assert abs(abs(out[1, 0] - 100) - 50) < 1e-3 and abs(out[1, 1] - 100) < 1e-3


def test_udp_crop_samples_the_box_corners():
    image = np.zeros((400, 400, 3), np.uint8)
    image[100, 100] = 255          # the box's corner (x, y)
    image[300, 300] = 200          # its corner (x + w, y + h)
    pre = Preprocess((200, 200), padding=1.0, warp="udp")
    center, scale = pre.center_scale([100.0, 100.0, 200.0, 200.0])
    crop = pre.crop(image, center, scale)
    # [x, x + w] lands on [0, W - 1] exactly: both corners are sampled at full strength.
    assert crop[0, 0, 0] == 255 and crop[199, 199, 0] == 200


@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_normalize_mean_std_and_channel_order(order):
    images = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 3, 1, 1)  # R=0, G=128, B=255
    pre = Preprocess((1, 1), mean=(10, 20, 30), std=(2, 4, 8), channel_order=order)
    out = pre.normalize(images)[0, :, 0, 0]
    first = [0, 128, 255] if order == "rgb" else [255, 128, 0]
    torch.testing.assert_close(out, (torch.tensor(first, dtype=torch.float32) - torch.tensor([10.0, 20, 30]))
                               / torch.tensor([2.0, 4, 8]))
    every = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(1, 3, 16, 16)
    imagenet = (every.float() / 255 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.equal(Preprocess((1, 1)).normalize(every), imagenet)  # bit for bit the reference's


def test_gt_box_rules():
    np.testing.assert_array_equal(clean_bbox([10, 20, 30, 40], (100, 100)), [10, 20, 29, 39])
    np.testing.assert_array_equal(clean_bbox([10, 20, 30, 40], (100, 100), rule="raw"), [10, 20, 30, 40])
    np.testing.assert_array_equal(clean_bbox([-5, 20, 300, 40], (100, 100), rule="raw"), [-5, 20, 300, 40])
    assert clean_bbox([10, 20, 0, 40], (100, 100), rule="raw") is None
    assert clean_bbox([10, 20, 30, 40], (100, 100), area=0, rule="raw") is None


def test_corner_origin_regression_codec():
    codec = RegressionCodec((192, 192), [(1, 2)], origin="corner")
    joints = np.array([[0.0, 0.0], [48.0, 96.0], [191.0, 100.0]])
    target, weight = codec.encode(joints, np.ones(3))
    np.testing.assert_allclose(target, joints / 192, atol=1e-6)
    coords, _ = codec.decode({"coords": torch.from_numpy(target)[None], "sigma": torch.zeros(1, 3, 2)})
    np.testing.assert_allclose(coords[0].numpy(), joints, atol=1e-4)
    # Flip: x' = 1 - x - 1/W (the mirror of pixel x is W - 1 - x), joints 1 and 2 swapped back.
    flipped = torch.from_numpy(target).clone()[None]
    flipped[..., 0] = 1 - flipped[..., 0] - 1 / 192
    flipped = flipped[:, [0, 2, 1]]
    fused = codec.fuse_flip({"coords": torch.from_numpy(target)[None], "sigma": torch.zeros(1, 3, 2)},
                            {"coords": flipped, "sigma": torch.zeros(1, 3, 2)})
    torch.testing.assert_close(fused["coords"][0], torch.from_numpy(target), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="origin"):
        RegressionCodec((192, 192), [], origin="middle")


def test_aspect_ratio_and_padding_keys():
    square = Preprocess((192, 256), aspect_ratio=1.0, padding=1.0)
    center, scale = square.center_scale([0.0, 0.0, 100.0, 50.0])
    np.testing.assert_allclose(scale * 200, [100, 100], rtol=1e-6)
    np.testing.assert_allclose(center, [50, 25])
    _, scale = Preprocess((192, 256)).center_scale([0.0, 0.0, 100.0, 50.0])
    np.testing.assert_allclose(scale * 200, [125, 125 / 0.75], rtol=1e-6)   # input's 3:4, x1.25


def test_backbone_strides_in_the_config():
    from processors.config import ConfigError, validate
    base = {"data": {"use_synthetic": True, "input_size": [128, 96], "heatmap_size": [32, 24]},
            "model": {"name": "litehrnet_wider_naive", "num_deconv": 0}}
    assert validate(base, check_paths=False).model.num_deconv == 0
    with pytest.raises(ConfigError, match="divisible by 32"):
        validate({**base, "data": {**base["data"], "input_size": [112, 96], "heatmap_size": [28, 24]}},
                 check_paths=False)
    with pytest.raises(ConfigError, match="resnet50 \\(stride 32\\) outputs input_size / 32"):
        validate({**base, "model": {"name": "resnet50", "num_deconv": 0}}, check_paths=False)
