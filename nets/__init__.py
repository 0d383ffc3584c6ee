"""Backbones, heads and the model builder: ``build_model(model_cfg, loss_cfg=None)``."""
from losses import build_loss

from .deconv_head import DeconvHead
from .litehrnet import LITEHRNETS, LiteHRNetBackbone
from .mobilenetv2 import MOBILENETS, MobileNetV2Backbone
from .pose_net import PoseNet
from .pose_weights import load_pose_weights
from .pretrained import PretrainedWeightsError, load_backbone_from_checkpoint, load_backbone_weights
from .resnet import RESNETS, ResNetBackbone
from .rle_head import RLEHead
from .scnet import SCNETS, SCNetBackbone

# YAML model.name -> backbone constructor (each has ``out_channels``; its output stride is
# processors.config.BACKBONE_STRIDES[name]).
BACKBONES = {**{name: ResNetBackbone for name in RESNETS}, **{name: SCNetBackbone for name in SCNETS},
             **{name: MobileNetV2Backbone for name in MOBILENETS},
             **{name: LiteHRNetBackbone for name in LITEHRNETS}}

# YAML model.type -> head constructor taking (model section, backbone channels, loss module or None).
HEADS = {
    "dconv": lambda cfg, channels, loss: DeconvHead(channels, cfg.num_joints, cfg.deconv_channels,
                                                    cfg.num_deconv, loss=loss),
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
    backbone = BACKBONES[model_cfg.name](model_cfg.name)
    if initialise and model_cfg.pretrained:
        load_backbone_weights(backbone, model_cfg.name, model_cfg.pretrained)
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


__all__ = ["build_model", "BACKBONES", "HEADS", "PoseNet", "DeconvHead", "RLEHead", "ResNetBackbone",
           "SCNetBackbone", "MobileNetV2Backbone", "LiteHRNetBackbone", "RESNETS", "SCNETS", "MOBILENETS",
           "LITEHRNETS", "load_backbone_weights", "load_backbone_from_checkpoint", "load_pose_weights",
           "PretrainedWeightsError"]
