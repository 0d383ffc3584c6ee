"""RLE regression family: loss against the written-out formula, the RealNVP flow, the regression
codec (encode/decode, flip), the RLE head and the SCNet backbones."""
import math
import types

import numpy as np
import pytest
import torch

from datasets.keypoints import COCO_KEYPOINTS
from decoders import RegressionCodec
from losses import RealNVP, RLELoss
from nets import build_model
from nets.scnet import SCNetBackbone


def rle_cfg(**kw):
    base = dict(type="rle", name="resnet18", num_joints=17, pretrained="", init_backbone="", coord_norm=True)
    base.update(kw)
    return types.SimpleNamespace(**base)


def test_rle_loss_equals_the_formula_by_hand():
    """Identity flow (all coupling weights 0): log G is the standard normal's, so every term can be
    written out: per coordinate log s - log G(r) + log(s sqrt(2 pi)) + |x - mu| / (sqrt(2) s + 1e-9)."""
    loss_fn = RLELoss()
    for p in loss_fn.flow_model.parameters():
        torch.nn.init.zeros_(p)
    mu = [[[0.10, -0.20], [0.30, 0.05]], [[-0.40, 0.25], [0.00, 0.00]]]
    sigma = [[[0.20, 0.50], [0.10, 0.30]], [[0.70, 0.05], [0.40, 0.40]]]
    x = [[[0.00, -0.10], [0.35, 0.00]], [[-0.30, 0.20], [0.45, -0.45]]]
    w = [[[1.0], [1.0]], [[1.0], [0.0]]]  # the last joint is outside the crop: weight 0
    expected = 0.0
    for b in range(2):
        for j in range(2):
            r = [(mu[b][j][d] - x[b][j][d]) / sigma[b][j][d] for d in range(2)]
            log_g = -0.5 * (r[0] ** 2 + r[1] ** 2) - math.log(2 * math.pi)
            for d in range(2):
                s = sigma[b][j][d]
                term = (math.log(s) - log_g + math.log(s * math.sqrt(2 * math.pi))
                        + abs(x[b][j][d] - mu[b][j][d]) / (math.sqrt(2) * s + 1e-9))
                expected += w[b][j][0] * term
    expected /= 2  # batch size
    got = loss_fn(*(torch.tensor(v, dtype=torch.float64) for v in (mu, sigma, x, w)))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_flow_at_initialisation_is_close_to_a_standard_normal():
    torch.manual_seed(0)
    flow = RealNVP()
    z = torch.randn(2000, 2)
    analytic = -0.5 * (z ** 2).sum(1) - math.log(2 * math.pi)
    with torch.no_grad():
        got = flow.log_prob(z)
    assert (got - analytic).abs().max() < 0.05


def test_flow_is_trained_and_saved_with_the_model():
    torch.manual_seed(0)
    model = build_model(rle_cfg())
    keys = [k for k in model.state_dict() if ".flow_model." in k]
    assert "head.loss_module.flow_model.s.0.0.weight" in keys and "head.loss_module.flow_model.mask" in keys
    flow_params = dict(model.head.loss_module.flow_model.named_parameters())
    assert len(flow_params) == 72  # 6 layers x (s, t) x 3 linear layers x (weight, bias)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    assert all(any(p is q for q in optimizer.param_groups[0]["params"]) for p in flow_params.values())
    before = {k: v.detach().clone() for k, v in flow_params.items()}
    images = torch.randn(4, 3, 64, 48)
    target = torch.rand(4, 17, 2) - 0.5
    out = model(images, target, torch.ones(4, 17, 1))
    out["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in flow_params.values())
    optimizer.step()
    assert all(not torch.equal(before[k], v) for k, v in flow_params.items())


def test_non_finite_inputs_stop_with_a_clear_error():
    coords = torch.zeros(1, 2, 2)
    coords[0, 1, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="RLE loss.*'coords': 1"):
        RLELoss()(coords, torch.full((1, 2, 2), 0.5), torch.zeros(1, 2, 2), torch.ones(1, 2, 1))


def test_rle_head_outputs_and_coord_norm():
    torch.manual_seed(0)
    model = build_model(rle_cfg()).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 128, 96))
    assert out["coords"].shape == out["sigma"].shape == (2, 17, 2)
    assert ((out["sigma"] > 0) & (out["sigma"] < 1)).all()
    feat = torch.rand(3, 512) + 0.1
    head = model.head
    expected = feat @ head.fc_coord.weight.t() / feat.norm(dim=1, keepdim=True) + head.fc_coord.bias
    torch.testing.assert_close(head.fc_coord(feat), expected)
    plain = build_model(rle_cfg(coord_norm=False)).head.fc_coord
    torch.testing.assert_close(plain(feat), feat @ plain.weight.t() + plain.bias)


def test_regression_codec_encode_decode_is_identity_inside_the_crop():
    codec = RegressionCodec((96, 128), COCO_KEYPOINTS.flip_pairs)
    rng = np.random.default_rng(0)
    joints = rng.uniform(0, 1, (17, 2)) * [95, 127]
    joints[3] = [-2.0, 40.0]    # left of the crop
    joints[4] = [50.0, 127.5]   # below the last pixel centre
    vis = np.ones(17)
    vis[5] = 0
    target, weight = codec.encode(joints, vis)
    assert target.shape == (17, 2) and weight.shape == (17, 1)
    assert weight[:, 0].tolist() == [0.0 if j in (3, 4, 5) else 1.0 for j in range(17)]
    np.testing.assert_allclose(target[0], [joints[0, 0] / 96 - 0.5, joints[0, 1] / 128 - 0.5], rtol=1e-6)
    coords, scores = codec.decode({"coords": torch.from_numpy(target)[None],
                                   "sigma": torch.full((1, 17, 2), 0.25)})
    np.testing.assert_allclose(coords[0].numpy(), joints, atol=1e-4)
    assert torch.allclose(scores, torch.full((1, 17, 1), 0.75))


def test_regression_flip_by_hand():
    """A joint at crop pixel x is at W - 1 - x in the mirrored crop, with left and right swapped."""
    codec = RegressionCodec((96, 128), ((0, 1),), flip_shift=True)
    w = 96
    coords = torch.tensor([[[10.0 / w - 0.5, 0.1], [70.0 / w - 0.5, -0.2], [30.0 / w - 0.5, 0.3]]])
    sigma = torch.tensor([[[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]])
    mirrored = torch.tensor([[[(w - 1 - 70.0) / w - 0.5, -0.2], [(w - 1 - 10.0) / w - 0.5, 0.1],
                              [(w - 1 - 30.0) / w - 0.5, 0.3]]])
    mirrored_sigma = torch.tensor([[[0.3, 0.4], [0.1, 0.2], [0.5, 0.6]]])
    fused = codec.fuse_flip({"coords": coords, "sigma": sigma}, {"coords": mirrored, "sigma": mirrored_sigma})
    torch.testing.assert_close(fused["coords"], coords)
    torch.testing.assert_close(fused["sigma"], sigma)
    no_shift = RegressionCodec((96, 128), ((0, 1),), flip_shift=False)
    fused = no_shift.fuse_flip({"coords": coords, "sigma": sigma}, {"coords": mirrored, "sigma": mirrored_sigma})
    torch.testing.assert_close(fused["coords"][..., 0], coords[..., 0] + 0.5 / w)  # half a pixel off


@pytest.mark.parametrize("name, millions", [("scnet50", 25.56), ("scnet101", 44.57)])
def test_scnet_parameter_counts_match_the_paper(name, millions):
    classifier = SCNetBackbone(name, classifier=True)
    assert sum(p.numel() for p in classifier.parameters()) / 1e6 == pytest.approx(millions, abs=0.005)
    backbone = SCNetBackbone(name).eval()
    with torch.no_grad():
        assert backbone(torch.randn(1, 3, 256, 128)).shape == (1, 2048, 8, 4)


def test_rle_on_scnet_builds_and_steps():
    torch.manual_seed(0)
    model = build_model(rle_cfg(name="scnet50"))
    loss = model(torch.randn(2, 3, 128, 128), torch.rand(2, 17, 2) - 0.5, torch.ones(2, 17, 1))["loss"]
    loss.backward()
    assert torch.isfinite(loss) and model.backbone.layer1[0].scconv.k2[1].weight.grad is not None


def test_init_backbone_from_a_heatmap_checkpoint(tmp_path):
    """model.init_backbone: an RLE model starts from the backbone of a TopPose heatmap checkpoint."""
    from nets import PretrainedWeightsError
    torch.manual_seed(1)
    heatmap = build_model(rle_cfg(type="dconv", deconv_channels=32, num_deconv=3))
    path = tmp_path / "best.pth"
    torch.save({"model": heatmap.state_dict(), "epoch": 3}, path)
    rle = build_model(rle_cfg(init_backbone=str(path)))
    for key, value in heatmap.backbone.state_dict().items():
        assert torch.equal(rle.backbone.state_dict()[key], value), key
    fresh = build_model(rle_cfg())
    assert not torch.equal(fresh.backbone.layer4[1].conv2.weight, heatmap.backbone.layer4[1].conv2.weight)
    no_backbone = tmp_path / "head_only.pth"
    torch.save({"model": heatmap.head.state_dict()}, no_backbone)
    with pytest.raises(PretrainedWeightsError, match="no backbone"):
        build_model(rle_cfg(init_backbone=str(no_backbone)))
