import argparse
import copy
import json

import av
import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dflib.explanation
from dflib.config import PredictConfig
from dflib.explanation import explain, frame_influence, grad_cam_maps, raw_grad_cam, upsample_cells, write_animation
from dflib.models import create_model
from dflib.cli import predict_cli
from dflib.prediction import Predictor
from tiny_checkpoint import tiny_checkpoint

EXPECTED_FILES = {"last_frame", "grid", "full_frame", "timeline", "animation", "prediction"}


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    return Predictor(tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "ckpt.pt"), device="cpu")


@pytest.fixture(scope="module")
def explained(predictor, face_video, tmp_path_factory):
    out = tmp_path_factory.mktemp("explain") / "face"
    return explain(face_video, predictor, out_dir=out), out


def _hand_grad_cam(model, frames, fake_index):
    """Grad-CAM written out with autograd: gradient of the video's decision (logit FAKE - logit REAL)
    at each frame's activations."""
    saved = {}
    handle = model.cam_target_layer.register_forward_hook(lambda module, inputs, output: saved.update(a=output))
    try:
        logits = model(frames.unsqueeze(0))[0]
        (grads,) = torch.autograd.grad(logits[fake_index] - logits[1 - fake_index], saved["a"])
    finally:
        handle.remove()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    return torch.relu((weights * saved["a"]).sum(dim=1)).detach().numpy()


@pytest.mark.parametrize("name,size", [("mobilenet_v3_small_lstm", 64), ("resnet18_lstm", 64), ("efficientnet_lite0_lstm", 64)])
def test_one_map_per_frame_for_the_video_decision(name, size):
    torch.manual_seed(0)
    model = create_model(name, hidden_size=8).eval()
    frames = torch.randn(3, 3, size, size)
    raw = raw_grad_cam(model, frames, 1)
    assert raw.shape[0] == 3 and raw.ndim == 3
    np.testing.assert_allclose(raw, _hand_grad_cam(model, frames, 1), rtol=1e-4, atol=1e-6)
    assert all(p.grad is None and p.requires_grad for p in model.parameters())

    maps = grad_cam_maps(model, frames, 1)
    assert maps.shape == (3, size, size) and np.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() == pytest.approx(1.0)
    upsampled = upsample_cells(torch.from_numpy(raw), (size, size)).numpy()
    # One scale for the video: the maps keep the ratios between frames of the raw maps.
    np.testing.assert_allclose(maps, upsampled / upsampled.max(), rtol=1e-5, atol=1e-6)


def test_a_map_cell_lands_where_its_receptive_field_is_centred():
    """The heatmap of one feature cell peaks on the input pixel that cell sees from the middle: found
    here as the centroid of the cell's gradient with respect to a random input (resnet18, stride 32,
    at 512 px so that the cell's receptive field, 435 px, stays inside the image)."""
    from torchvision.models import resnet18

    torch.manual_seed(0)
    trunk = torch.nn.Sequential(*list(resnet18().children())[:-2]).eval()
    image = torch.randn(1, 3, 512, 512, requires_grad=True)
    cells = trunk(image)
    row, col = 8, 7
    cells[0, :, row, col].sum().backward()
    weight = image.grad[0].abs().sum(0)
    ys, xs = torch.meshgrid(torch.arange(512.0), torch.arange(512.0), indexing="ij")
    centre = (float((weight * ys).sum() / weight.sum()), float((weight * xs).sum() / weight.sum()))
    assert centre == pytest.approx((32 * row, 32 * col), abs=2)
    one_hot = torch.zeros(1, *cells.shape[-2:])
    one_hot[0, row, col] = 1.0
    peak = np.unravel_index(int(upsample_cells(one_hot, (512, 512))[0].argmax()), (512, 512))
    assert peak == (32 * row, 32 * col)
    # Past the last cell the map is flat, not faded towards zero.
    assert upsample_cells(torch.ones(1, 16, 16), (512, 512)).min() == pytest.approx(1.0)


def test_maps_explain_the_decision_not_the_part_both_logits_share():
    """Cross-entropy never trains the sum of the head's rows; adding a vector to both rows changes
    neither P(FAKE) nor the map."""
    torch.manual_seed(0)
    model = create_model("resnet18_lstm", hidden_size=8).eval()
    frames = torch.randn(3, 3, 64, 64)
    before = raw_grad_cam(model, frames, 1)
    p_before = torch.softmax(model(frames[None]), -1)
    with torch.no_grad():
        model.head.weight += torch.randn(1, 8) * 5
    np.testing.assert_allclose(torch.softmax(model(frames[None]), -1).detach(), p_before.detach(), atol=1e-5)
    np.testing.assert_allclose(raw_grad_cam(model, frames, 1), before, rtol=1e-3, atol=1e-6)


def test_frame_influence_is_p_fake_minus_p_fake_without_the_frame():
    torch.manual_seed(0)
    model = create_model("resnet18_lstm", hidden_size=8).eval()
    frames = torch.randn(5, 3, 64, 64)
    with torch.no_grad():
        influence = frame_influence(model, model.frame_features(frames[None])[0], 1)
        full = float(torch.softmax(model(frames[None]), -1)[0, 1])
        by_hand = [full - float(torch.softmax(model(torch.cat([frames[:t], frames[t + 1:]])[None]), -1)[0, 1])
                   for t in range(len(frames))]
    np.testing.assert_allclose(influence, by_hand, atol=1e-6)
    assert len(set(np.round(influence, 6))) == len(frames)
    assert frame_influence(model, model.frame_features(frames[None, :1])[0], 1).tolist() == [0.0]


def test_explanation_records_the_influence_of_each_input_frame(explained):
    result, out = explained
    influence = result.prediction.frame_influence
    assert len(influence) == len(result.frame_indices)
    assert json.loads((out / "prediction.json").read_text())["frame_influence"] == pytest.approx(influence)
    assert "influence" in result.prediction.timings


def test_grid_and_full_frame_show_the_most_influential_frame_first(explained, monkeypatch):
    result, _ = explained
    prediction = copy.deepcopy(result.prediction)
    prediction.frame_influence = [0.1, -0.2, 0.3, 0.0]
    prediction.frame_scores = [0.9, 0.8, 0.1, 0.2]  # the running score would rank them otherwise
    shown = []
    monkeypatch.setattr(dflib.explanation, "_overlay", lambda image, cam_map, scale=1: shown.append(image) or image)
    dflib.explanation._grid_figure(result, prediction)
    assert [next(i for i, frame in enumerate(result.frames) if np.shares_memory(frame, image)) for image in shown] == [
        2, 0, 3, 1]
    drawn = []
    monkeypatch.setattr(dflib.explanation, "_draw", lambda image, *args: drawn.append(args[-3]) or image)
    crop_boxes = np.zeros((4, 4))
    images = {index: np.zeros((8, 8, 3), np.uint8) for index in result.frame_indices}
    dflib.explanation._full_frame(result, prediction, crop_boxes, images)
    assert f"frame {result.frame_indices[2]}: influence +0.300" in drawn[0][1]


def test_cam_works_with_frozen_weights_and_leaves_them_frozen():
    model = create_model("mobilenet_v3_small_lstm", hidden_size=8).eval().requires_grad_(False)
    assert grad_cam_maps(model, torch.randn(2, 3, 48, 48), 1).shape == (2, 48, 48)
    assert not any(p.requires_grad for p in model.parameters())


def test_maps_are_scaled_once_per_video_not_per_frame(explained):
    result, _ = explained
    assert result.maps.shape == (4, 48, 48) and result.frames.shape == (4, 48, 48, 3)
    frame_peaks = result.maps.reshape(len(result.maps), -1).max(axis=1)
    assert frame_peaks.max() == pytest.approx(1.0)
    assert frame_peaks.min() < 0.99  # per-frame min-max scaling would make every peak 1
    assert result.frame_indices == result.prediction.frame_indices
    assert "cam" in result.prediction.timings


def test_explanation_files_are_written_and_readable(explained):
    result, out = explained
    assert set(result.files) == EXPECTED_FILES
    for path in result.files.values():
        assert path.parent == out and path.stat().st_size > 0
    grid = cv2.imread(str(result.files["grid"]))
    full = cv2.imread(str(result.files["full_frame"]))
    assert grid is not None and full.shape[:2] == (240, 320)
    assert cv2.imread(str(result.files["last_frame"])).shape[:2] == (192, 192)
    with av.open(str(result.files["animation"])) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(decoded) == len(result.frame_indices) and decoded[0].shape == (240, 320, 3)
    assert set(result.figures) == {"last_frame", "grid", "full_frame", "timeline", "animation"}


def test_animation_falls_back_to_gif(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise av.FFmpegError(0, "no encoder")

    frames = np.random.default_rng(0).integers(0, 255, (3, 32, 48, 3), dtype=np.uint8)
    monkeypatch.setattr(dflib.explanation.av, "open", refuse)
    path = write_animation(frames, tmp_path / "clip.mp4")
    monkeypatch.undo()
    assert path.suffix == ".gif" and not (tmp_path / "clip.mp4").exists()
    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 3


def test_no_face_writes_only_the_prediction(predictor, noise_video, tmp_path):
    result = explain(noise_video, predictor, out_dir=tmp_path / "noise")
    assert result.prediction.label == "NO_FACE" and result.maps is None and result.figures == {}
    assert set(result.files) == {"prediction"}


def test_cli_explain_writes_a_folder_per_video(face_video, noise_video, tmp_path):
    explain_dir = tmp_path / "explain"
    args = argparse.Namespace(videos=[str(face_video), str(noise_video)], out="", json=False, quiet=True)
    cfg = PredictConfig(checkpoint=str(tiny_checkpoint(tmp_path / "ckpt.pt")), device="cpu", explain=str(explain_dir))
    assert predict_cli(args, cfg) == 0
    assert (explain_dir / face_video.name / "cam_grid.png").stat().st_size > 0
    assert (explain_dir / noise_video.name / "prediction.json").is_file()


def test_explanation_draws_on_the_frames_its_prediction_decoded(predictor, face_video, monkeypatch):
    import dflib.video

    passes = []
    original = dflib.video.VideoReader._frames
    monkeypatch.setattr(dflib.video.VideoReader, "_frames", lambda self, *args: passes.append(args) or original(self, *args))
    result = explain(face_video, predictor)
    assert len(passes) == 1  # one decoding pass, the prediction's
    index = result.frame_indices[0]
    _, (exact,) = dflib.video.VideoReader(face_video).read([index])
    drawn = result.figures["animation"][0]
    assert drawn.shape[:2] == tuple(side - side % 2 for side in exact.shape[:2])
