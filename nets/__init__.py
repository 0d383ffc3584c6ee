"""Backbones, heads and the model builder: ``build_model(model_cfg)``."""
from .deconv_head import DeconvHead
from .pose_net import PoseNet
from .pretrained import PretrainedWeightsError, load_backbone_weights
from .resnet import RESNETS, ResNetBackbone


def _build_dconv(cfg):
    backbone = ResNetBackbone(cfg.name)
    if cfg.pretrained:
        load_backbone_weights(backbone, cfg.name, cfg.pretrained)
    head = DeconvHead(backbone.out_channels, cfg.num_joints, cfg.deconv_channels, cfg.num_deconv)
    return PoseNet(backbone, head)


# YAML model.type -> constructor taking the model config section.
BUILDERS = {"dconv": _build_dconv}


def build_model(model_cfg):
    """Build the network described by the YAML ``model`` section (a Config or an object with its keys)."""
    if model_cfg.type not in BUILDERS:
        raise ValueError(f"unknown model.type '{model_cfg.type}'; choose one of {', '.join(BUILDERS)}")
    return BUILDERS[model_cfg.type](model_cfg)


__all__ = ["build_model", "BUILDERS", "PoseNet", "DeconvHead", "ResNetBackbone", "RESNETS",
           "load_backbone_weights", "PretrainedWeightsError"]
