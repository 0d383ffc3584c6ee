"""Backbones, heads and the model builder: ``build_model(model_cfg, loss_cfg=None)``."""
from losses import build_loss

from .deconv_head import DeconvHead
from .duc_head import DUCHead
from .hrnet import HRNETS, HRNetBackbone
from .litehrnet import LITEHRNETS, LiteHRNetBackbone
from .mobilenetv2 import MOBILENETS, MobileNetV2Backbone
from .pose_net import PoseNet
from .pose_weights import load_pose_weights
from .pretrained import PretrainedWeightsError, load_backbone_from_checkpoint, load_backbone_weights
from .resnet import RESNETS, ResNetBackbone
from .rle_head import RLEHead
from .scnet import SCNETS, SCNetBackbone


def _resnet(cfg):
    """ResNet, with squeeze-and-excitation in every block when ``model.se`` (ratio ``model.reduction``)."""
    return ResNetBackbone(cfg.name, se=getattr(cfg, "se", False), reduction=getattr(cfg, "reduction", 16))


# YAML model.name -> backbone constructor taking the model section (each backbone has ``out_channels``;
# its output stride is processors.config.BACKBONE_STRIDES[name], which tests/test_model_zoo.py checks).
BACKBONES = {**{name: _resnet for name in RESNETS},
             **{name: lambda cfg: SCNetBackbone(cfg.name) for name in SCNETS},
             **{name: lambda cfg: MobileNetV2Backbone(cfg.name) for name in MOBILENETS},
             **{name: lambda cfg: LiteHRNetBackbone(cfg.name) for name in LITEHRNETS},
             **{name: lambda cfg: HRNetBackbone(cfg.name) for name in HRNETS}}

# YAML model.type -> head constructor taking (model section, backbone channels, loss module or None); how
# much each head upsamples is processors.config.HEAD_UPSAMPLING[type].
HEADS = {
    "dconv": lambda cfg, channels, loss: DeconvHead(channels, cfg.num_joints, cfg.deconv_channels,
                                                    cfg.num_deconv, loss=loss),
    "duc": lambda cfg, channels, loss: DUCHead(channels, cfg.num_joints, loss=loss),
    "rle": lambda cfg, channels, loss: RLEHead(channels, cfg.num_joints, coord_norm=cfg.coord_norm, loss=loss),
}


def build_model(model_cfg, loss_cfg=None, initialise=True):
    """The network of the YAML ``model`` section; its head owns the loss of ``loss_cfg`` (the
    ``loss`` section; None = the head's default). ``model(images)`` predicts,
    ``model(images, target, target_weight)`` returns ``{"loss": ...}``. ``initialise=False`` skips
    ``model.pretrained`` / ``init_backbone`` / ``init_weights`` (for weights that are loaded next)."""
    if model_cfg.type not in HEADS:
        raise ValueError(f"unknown model.type '{model_cfg.type}'; choose one of {', '.join(HEADS)}")
    if model_cfg.name not in BACKBONES:
        raise ValueError(f"unknown model.name '{model_cfg.name}'; choose one of {', '.join(BACKBONES)}")
    if getattr(model_cfg, "se", False) and model_cfg.name not in RESNETS:
        raise ValueError(f"model.se adds squeeze-and-excitation to ResNets ({', '.join(RESNETS)}), "
                         f"not to {model_cfg.name}")
    backbone = BACKBONES[model_cfg.name](model_cfg)
    if initialise and model_cfg.pretrained:
        load_backbone_weights(backbone, getattr(backbone, "arch", model_cfg.name), model_cfg.pretrained)
    if initialise and getattr(model_cfg, "init_backbone", ""):
        load_backbone_from_checkpoint(backbone, model_cfg.init_backbone)
    loss = build_loss(loss_cfg) if loss_cfg is not None else None
    model = PoseNet(backbone, HEADS[model_cfg.type](model_cfg, backbone.out_channels, loss))
    if initialise and getattr(model_cfg, "init_weights", ""):
        report = load_pose_weights(model, model_cfg.init_weights, strict=False)
        if report["missing"]:
            print(f"model.init_weights: {report['loaded']} tensors loaded from {model_cfg.init_weights}; "
                  f"{len(report['missing'])} left at their initialisation ({', '.join(report['missing'][:4])}); "
                  f"{len(report['unused'])} of the file unused")
    return model


__all__ = ["build_model", "BACKBONES", "HEADS", "PoseNet", "DeconvHead", "DUCHead", "RLEHead", "ResNetBackbone",
           "SCNetBackbone", "MobileNetV2Backbone", "LiteHRNetBackbone", "HRNetBackbone", "RESNETS", "SCNETS",
           "MOBILENETS", "LITEHRNETS", "HRNETS", "load_backbone_weights", "load_backbone_from_checkpoint",
           "load_pose_weights", "PretrainedWeightsError"]
