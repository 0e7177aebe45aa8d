"""Convolution helpers for small feature maps on the CPU.

At the quick profiles' resolutions (48-64 px) the last ResNet stages run on 2 x 2 to 4 x 4 maps,
where the CPU convolution kernels cost more than the same arithmetic as one matrix product.
:func:`use_small_map_convs` switches a module's ``nn.Conv2d`` layers to :class:`SmallMapConv2d` in
place (same parameters and state dict), which takes the matrix-product path only for such maps.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SmallMapConv2d", "use_small_map_convs"]


class SmallMapConv2d(nn.Conv2d):
    """``nn.Conv2d`` that computes small output maps on the CPU as im2col + one matrix product.

    Same convolution (equal up to float rounding, ~1e-6 relative), same parameters and state dict.
    At 48-64 px inputs (the quick profiles) ResNet-18's ``layer4`` and the conv4x4 reduction run on 2 x 2
    / 3 x 3 maps, where oneDNN's CPU kernels are 1.5-3x slower than one GEMM (forward and backward;
    measured with 1 thread, batch 16: 512 -> 512 3x3 on 2 x 2, 34 ms vs 20 ms; 512 -> 256 4x4/s2,
    36 ms vs 12 ms). Other devices, larger maps (more than ``max_positions`` output pixels),
    groups, dilation and non-zero padding modes take ``nn.Conv2d``'s path.
    """

    max_positions: int = 16

    def forward(self, x: Tensor) -> Tensor:
        if (x.device.type != "cpu" or x.dim() != 4 or self.groups != 1 or self.padding_mode != "zeros"
                or isinstance(self.padding, str) or tuple(self.dilation) != (1, 1)):
            return super().forward(x)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        B, _, H, W = x.shape
        Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
        if Ho * Wo > self.max_positions or Ho < 1 or Wo < 1:
            return super().forward(x)
        cols = F.unfold(x, (kh, kw), padding=(ph, pw), stride=(sh, sw))          # (B, C kh kw, Ho Wo)
        out = self.weight.reshape(self.out_channels, -1) @ cols                  # (B, O, Ho Wo)
        if self.bias is not None:
            out = out + self.bias[:, None]
        return out.view(B, self.out_channels, Ho, Wo)


def use_small_map_convs(module: nn.Module) -> nn.Module:
    """Turn every plain ``nn.Conv2d`` of ``module`` into a :class:`SmallMapConv2d` (in place; the
    parameters are kept, so checkpoints and optimiser state are unaffected)."""
    for m in module.modules():
        if type(m) is nn.Conv2d:
            m.__class__ = SmallMapConv2d
    return module
