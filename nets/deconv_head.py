"""SimpleBaseline head: stacked 4x4 stride-2 transposed convolutions, then 1x1 to the joints.

With ``num_deconv=0`` it is only the 1x1 output conv, the head of stride-4 backbones (Lite-HRNet)."""
import torch.nn as nn

from losses import JointsMSELoss

from .weight_init import init_pose_weights


class DeconvHead(nn.Module):
    """``num_deconv`` x (ConvTranspose 4x4 s2 -> BN -> ReLU) then a 1x1 conv to ``num_joints`` maps.

    Each deconv doubles the spatial size, so three of them turn a stride-32 feature map into a
    stride-4 heatmap (64x48 for a 256x192 input). Initialised as the reference: deconv and final
    weights N(0, 0.001), BN weight 1 / bias 0, final bias 0. ``loss`` (default ``JointsMSELoss``)
    compares the heatmaps with their targets.
    """

    def __init__(self, in_channels, num_joints, channels=256, num_deconv=3, loss=None):
        super().__init__()
        layers = []
        for _ in range(num_deconv):
            layers += [
                nn.ConvTranspose2d(in_channels, channels, kernel_size=4, stride=2, padding=1,
                                   output_padding=0, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            ]
            in_channels = channels
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(in_channels, num_joints, kernel_size=1)
        init_pose_weights(self)
        self.loss_module = loss if loss is not None else JointsMSELoss()

    @staticmethod
    def foreign_key(key):
        """Own name of a checkpoint's head tensor: PaddleDetection calls the output conv ``final_conv``."""
        return "final_layer." + key[len("final_conv."):] if key.startswith("final_conv.") else key

    def forward(self, x):
        return self.final_layer(self.deconv_layers(x))

    def loss(self, heatmaps, target, target_weight):
        return self.loss_module(heatmaps, target, target_weight)
