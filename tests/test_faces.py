import numpy as np
import pytest

from dflib.faces import Detection, create_detector, crop_square, landmarks_in_crop, list_detectors, square_box
from dflib.synthetic import face_photo, noise_frames
from dflib.tracking import fill_gaps, iou, link_tracks


def test_registry_lists_detectors_and_names_valid_ones_on_error():
    assert {"centerface", "dlib_hog", "dlib_cnn"} <= set(list_detectors())
    with pytest.raises(ValueError, match="centerface"):
        create_detector("nope")


def test_centerface_finds_the_face_and_its_landmarks_in_full_frame_pixels():
    detector = create_detector("centerface", long_side=320)
    frame = np.full((480, 640, 3), 90, np.uint8)
    face = face_photo()
    frame[100:100 + face.shape[0], 300:300 + face.shape[1]] = face
    found = detector.detect(frame)
    assert len(found) == 1
    x1, y1, x2, y2 = found[0].box
    # The face (not the whole photo) lies inside the pasted photo, in full-frame pixels.
    assert 300 <= x1 < x2 <= 300 + face.shape[1] and 100 <= y1 < y2 <= 100 + face.shape[0]
    eyes = found[0].landmarks[:2]
    assert eyes[0, 0] < eyes[1, 0] and x1 < eyes[:, 0].mean() < x2 and y1 < eyes[:, 1].mean() < y2


def test_centerface_same_answer_after_another_input_shape():
    detector = create_detector("centerface")
    frame = np.full((256, 256, 3), 90, np.uint8)
    face = face_photo()[:200, :200]
    frame[20:220, 20:220] = face
    first = detector.detect(frame)
    detector.detect(np.full((480, 640, 3), 90, np.uint8))
    again = detector.detect(frame)
    assert len(first) == len(again) == 1
    assert np.allclose(first[0].box, again[0].box)


def test_no_face_in_noise():
    detector = create_detector("centerface")
    assert all(detector.detect(frame) == [] for frame in noise_frames(3, 320, 240))


def test_square_box_and_crop_with_margin_past_the_frame_edge():
    box = square_box(np.array([10, 20, 50, 100], np.float32), 1.3)
    assert box[2] - box[0] == pytest.approx(box[3] - box[1]) == pytest.approx(104)
    image = np.full((120, 120, 3), 200, np.uint8)
    crop = crop_square(image, box, 64)
    assert crop.shape == (64, 64, 3)
    assert crop[32, 0].sum() == 0 and crop[32, 40].min() == 200  # outside the frame is black


def test_landmarks_map_into_crop_pixels():
    box = np.array([100, 100, 200, 200], np.float32)
    points = landmarks_in_crop(np.array([[150, 150]] * 5, np.float32), box, 50)
    assert np.allclose(points, 25)
    assert np.isnan(landmarks_in_crop(None, box, 50)).all()


def det(x, y, side=40, score=0.9):
    return Detection(np.array([x, y, x + side, y + side], np.float32), score)


def test_tracks_follow_moving_faces_and_keep_identities_apart():
    frames = [[det(10 + 15 * t, 10), det(200, 150 - 10 * t, side=60)] for t in range(6)]
    tracks = link_tracks(frames, min_iou=0.3, max_gap=2)
    assert len(tracks) == 2
    assert all(len(track.detections) == 6 for track in tracks)
    assert tracks[0].detections[0].box[2] - tracks[0].detections[0].box[0] == 60  # larger face first


def test_short_gap_is_interpolated_long_gap_splits():
    frames = [[det(10, 10)], [], [det(14, 10)], [], [], [], [], [det(30, 10)]]
    tracks = link_tracks(frames, max_gap=2)
    assert len(tracks) == 2
    filled = fill_gaps(next(t for t in tracks if 0 in t.detections), max_gap=2)
    assert list(filled.positions) == [0, 1, 2]
    assert list(filled.interpolated) == [False, True, False]
    assert filled.boxes[1][0] == pytest.approx(12) and filled.scores[1] == 0


def test_iou():
    a = np.array([0, 0, 10, 10], np.float32)
    assert iou(a, a) == 1 and iou(a, a + 20) == 0
    assert iou(a, np.array([5, 0, 15, 10], np.float32)) == pytest.approx(1 / 3)


def test_adaptive_scale_finds_the_same_faces_and_falls_back_for_a_small_one():
    from dflib.faces import detect_frames

    detector = create_detector("centerface", long_side=640)
    face = np.repeat(np.repeat(face_photo(), 2, axis=0), 2, axis=1)
    big = np.full((600, 800, 3), 90, np.uint8)
    big[40:40 + face.shape[0], 200:200 + face.shape[1]] = face
    small = np.full((600, 800, 3), 90, np.uint8)
    tiny_face = face[::8, ::8]
    small[400:400 + tiny_face.shape[0], 50:50 + tiny_face.shape[1]] = tiny_face
    calls = []
    original = detector.detect
    detector.detect = lambda image, long_side=None: calls.append(long_side) or original(image, long_side)
    adaptive = detect_frames(detector, [big, big, small], face_size=64)
    assert calls[1] < 640 and calls[-1] == 640  # cheaper once the face is known; full size when it is lost
    full = [original(image) for image in (big, big, small)]
    assert [len(found) for found in adaptive] == [len(found) for found in full] == [1, 1, 1]
    for a, b in zip(adaptive, full):
        assert iou(a[0].box, b[0].box) > 0.8
