"""Model builder, pretrained loading and the heatmap loss against the reference formula."""
import types

import pytest
import torch
import torchvision

from losses import JointsMSELoss
from nets import PretrainedWeightsError, build_model
from nets.pretrained import load_backbone_weights
from nets.resnet import ResNetBackbone


def model_cfg(**kw):
    base = dict(type="dconv", name="resnet18", num_joints=17, pretrained="", deconv_channels=64,
                num_deconv=3, reduction=16)
    base.update(kw)
    return types.SimpleNamespace(**base)


def test_dconv_output_is_quarter_resolution():
    model = build_model(model_cfg()).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 128, 96))
    assert out.shape == (2, 17, 32, 24)


def test_resnet50_dconv_parameter_count():
    # SimpleBaseline ResNet-50 256x192: 34.0 M parameters (published model card)
    model = build_model(model_cfg(name="resnet50", deconv_channels=256))
    assert abs(sum(p.numel() for p in model.parameters()) / 1e6 - 34.0) < 0.1


def test_pretrained_from_local_torchvision_file(tmp_path):
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(reference.state_dict(), path)
    model = build_model(model_cfg(pretrained=str(path)))
    assert torch.equal(model.backbone.layer3[1].conv2.weight, reference.layer3[1].conv2.weight)
    assert torch.equal(model.backbone.bn1.running_var, reference.bn1.running_var)


def test_pretrained_errors_are_clear(tmp_path, monkeypatch):
    backbone = ResNetBackbone("resnet18")
    wrong = tmp_path / "r50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), wrong)
    with pytest.raises(PretrainedWeightsError, match="resnet18"):
        load_backbone_weights(backbone, "resnet18", str(wrong))
    corrupt = tmp_path / "bad.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(PretrainedWeightsError, match="cannot read"):
        load_backbone_weights(backbone, "resnet18", str(corrupt))
    monkeypatch.setenv("TOPPOSE_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_cache"))
    with pytest.raises(PretrainedWeightsError, match="model.pretrained"):
        load_backbone_weights(backbone, "resnet18", "imagenet")


def test_joints_mse_matches_reference_loop():
    torch.manual_seed(0)
    out, target = torch.randn(4, 17, 16, 12), torch.rand(4, 17, 16, 12)
    weight = (torch.rand(4, 17, 1) > 0.3).float()
    criterion = torch.nn.MSELoss()
    expected = 0
    for j in range(17):  # HRNet JointsMSELoss, written out
        p, g = out[:, j].reshape(4, -1), target[:, j].reshape(4, -1)
        expected = expected + 0.5 * criterion(p * weight[:, j], g * weight[:, j])
    expected = expected / 17
    assert torch.allclose(JointsMSELoss(True)(out, target, weight), expected, rtol=1e-6)
    unweighted = sum(0.5 * criterion(out[:, j], target[:, j]) for j in range(17)) / 17
    assert torch.allclose(JointsMSELoss(False)(out, target, weight), unweighted, rtol=1e-6)
