import dataclasses
import json

import cv2
import numpy as np
import pytest

from dflib.pseudofake import (
    BLEND_RATIOS,
    LANDMARK_HULLS,
    BlendParams,
    blend_frame,
    face_mask,
    identity_params,
    make_pseudo_fake,
    sample_params,
)

SIZE = 64
FRAMES = 4
# dlib's 68 points on scikit-image's astronaut, as fractions of a crop made like preprocessing's.
FACE_68 = np.array([
    [0.2, 0.397], [0.206, 0.481], [0.212, 0.564], [0.219, 0.641], [0.238, 0.719], [0.283, 0.783], [0.335, 0.828],
    [0.393, 0.873], [0.463, 0.886], [0.534, 0.879], [0.605, 0.847], [0.669, 0.809], [0.714, 0.744], [0.74, 0.674],
    [0.759, 0.59], [0.772, 0.513], [0.785, 0.423], [0.251, 0.32], [0.277, 0.275], [0.328, 0.249], [0.38, 0.249],
    [0.431, 0.275], [0.579, 0.288], [0.624, 0.268], [0.669, 0.275], [0.721, 0.301], [0.746, 0.352], [0.502, 0.378],
    [0.502, 0.442], [0.495, 0.5], [0.495, 0.558], [0.425, 0.59], [0.457, 0.603], [0.489, 0.616], [0.521, 0.603],
    [0.553, 0.596], [0.303, 0.391], [0.341, 0.371], [0.38, 0.371], [0.418, 0.403], [0.373, 0.403], [0.335, 0.403],
    [0.573, 0.416], [0.611, 0.384], [0.65, 0.384], [0.688, 0.41], [0.65, 0.423], [0.611, 0.416], [0.335, 0.629],
    [0.393, 0.635], [0.45, 0.635], [0.483, 0.648], [0.521, 0.641], [0.573, 0.641], [0.624, 0.648], [0.566, 0.712],
    [0.521, 0.738], [0.476, 0.744], [0.438, 0.738], [0.386, 0.706], [0.354, 0.641], [0.444, 0.661], [0.483, 0.674],
    [0.521, 0.667], [0.605, 0.654], [0.521, 0.699], [0.483, 0.706], [0.444, 0.699]])


def face_landmarks(size=SIZE, dx=0.0, dy=0.0):
    """A frontal face centred in the crop (CenterFace order), moved by dx, dy pixels."""
    points = np.array([[0.39, 0.40], [0.61, 0.40], [0.50, 0.53], [0.41, 0.66], [0.59, 0.66]]) * size
    return (points + [dx, dy]).astype(np.float32)


def face_68(size=SIZE, dx=0.0):
    return (FACE_68 * size + [dx, 0.0]).astype(np.float32)


def textured_clip(frames=FRAMES, size=SIZE, seed=0):
    """A static clip of smooth texture, so any colour, blur or shift shows up in the pixels."""
    noise = np.random.default_rng(seed).integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8)
    frame = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.repeat(frame[None], frames, axis=0)


def strong_params(seed=0, **changes):
    """Sampled params with a visible colour change and a full blend, so a test cannot pass on a
    draw that barely alters the face."""
    params = sample_params(np.random.default_rng(seed), SIZE)
    return dataclasses.replace(params, **{"brightness": 30.0, "blend_ratio": 1.0, "alter": "source", **changes})


def centre_of_mass(mask):
    rows, cols = np.indices(mask.shape)
    return np.array([(cols * mask).sum(), (rows * mask).sum()]) / mask.sum()


@pytest.mark.parametrize("kind", ["hull", "ellipse"])
def test_mask_covers_face_brows_to_chin_and_not_background(kind):
    landmarks = face_landmarks()
    mask = face_mask(SIZE, landmarks, dataclasses.replace(identity_params(), mask_kind=kind))
    assert mask.shape == (SIZE, SIZE) and mask.dtype == np.float32
    assert mask.min() >= 0 and mask.max() <= 1
    eyes_y, mouth_y = landmarks[0, 1], landmarks[3, 1]
    span = mouth_y - eyes_y
    centre_x = int(landmarks[2, 0])
    # Eyes to mouth, and the brows above and the chin below, are all inside.
    inner = mask[int(eyes_y) : int(mouth_y) + 1, int(landmarks[0, 0]) : int(landmarks[1, 0]) + 1]
    assert inner.min() > 0.99
    assert mask[int(eyes_y - 0.4 * span), centre_x] > 0.99
    assert mask[int(mouth_y + 0.5 * span), centre_x] > 0.99
    for corner in (mask[:6, :6], mask[:6, -6:], mask[-6:, :6], mask[-6:, -6:]):
        assert corner.max() == 0


def test_mask_follows_the_landmarks():
    params = strong_params(mask_kind="hull")
    centred = face_mask(SIZE, face_landmarks(), params)
    moved = face_mask(SIZE, face_landmarks(dx=-10, dy=5), params)
    np.testing.assert_allclose(centre_of_mass(moved) - centre_of_mass(centred), [-10, 5], atol=0.5)
    bigger = face_mask(2 * SIZE, face_landmarks(2 * SIZE), params)
    assert bigger.mean() == pytest.approx(centred.mean(), rel=0.05)


def test_missing_landmarks_give_a_centred_symmetric_ellipse():
    params = identity_params()
    without = face_mask(SIZE, None, params)
    all_nan = np.full((5, 2), np.nan, np.float32)
    np.testing.assert_array_equal(face_mask(SIZE, all_nan, params), without)
    partly_nan = face_landmarks()
    partly_nan[2] = np.nan
    np.testing.assert_array_equal(face_mask(SIZE, partly_nan, params), without)
    assert without[SIZE // 2, SIZE // 2] == 1
    assert without[:4].max() == 0 and without[:, :4].max() == 0
    np.testing.assert_allclose(without, without[:, ::-1], atol=0.05)  # anti-aliasing is not exactly mirror-symmetric
    np.testing.assert_allclose(centre_of_mass(without)[0], (SIZE - 1) / 2, atol=0.1)


def test_mask_blur_softens_the_edge_and_erosion_shrinks_the_mask():
    sharp = face_mask(SIZE, face_landmarks())
    soft = face_mask(SIZE, face_landmarks(), dataclasses.replace(identity_params(), mask_blur=0.03))
    eroded = face_mask(SIZE, face_landmarks(), dataclasses.replace(identity_params(), mask_erode=0.05))
    in_between = lambda mask: np.count_nonzero((mask > 0.05) & (mask < 0.95))
    assert in_between(soft) > 3 * in_between(sharp)
    assert soft.max() == pytest.approx(1.0)  # rescaled to a peak of 1 after the blur, as SBI does
    assert eroded.sum() < 0.8 * sharp.sum()
    assert np.all(eroded <= sharp + 1e-6)


@pytest.mark.parametrize("kind", LANDMARK_HULLS)
def test_68_landmark_hulls_cover_the_face_and_not_the_background(kind):
    points = face_68()
    mask = face_mask(SIZE, points, dataclasses.replace(identity_params(), mask_kind=kind))
    for index in (30, 36, 45, 48, 54, 8):  # nose tip, eye corners, mouth corners, just above the chin
        x, y = (points[index] + (points[30] - points[index]) * 0.1).astype(int)
        assert mask[y, x] > 0.99, index
    for corner in (mask[:6, :6], mask[:6, -6:], mask[-6:, :6], mask[-6:, -6:]):
        assert corner.max() == 0
    convex = face_mask(SIZE, points, dataclasses.replace(identity_params(), mask_kind="facehull"))
    assert mask.sum() <= convex.sum() * 1.35


def test_extended_hull_reaches_further_up_than_the_components():
    points = face_68()
    masks = {kind: face_mask(SIZE, points, dataclasses.replace(identity_params(), mask_kind=kind))
             for kind in ("components", "extended")}
    top = {kind: np.nonzero(mask.max(axis=1) > 0.5)[0].min() for kind, mask in masks.items()}
    assert top["extended"] < top["components"] - 1
    assert masks["extended"].sum() > 1.05 * masks["components"].sum()


def test_68_landmarks_take_over_from_the_5_and_fall_back_when_missing():
    clip = textured_clip()
    five = np.repeat(face_landmarks()[None], FRAMES, axis=0)
    dense = np.repeat(face_68()[None], FRAMES, axis=0)
    _, masks, params = make_pseudo_fake(clip, five, 3, landmarks68=dense)
    assert params.mask_kind in LANDMARK_HULLS
    np.testing.assert_array_equal(masks[0], face_mask(SIZE, dense[0], params))
    missing = np.full_like(dense, np.nan)
    fallback, fallback_masks, fallback_params = make_pseudo_fake(clip, five, 3, landmarks68=missing)
    only_five, five_masks, five_params = make_pseudo_fake(clip, five, 3)
    np.testing.assert_array_equal(fallback, only_five)
    assert fallback_params == five_params and fallback_params.mask_kind in ("hull", "ellipse")


def test_mask_moves_with_the_pasted_face():
    params = dataclasses.replace(identity_params(), shift=(0.1, 0.05))
    still = face_mask(SIZE, face_landmarks())
    moved = face_mask(SIZE, face_landmarks(), params)
    np.testing.assert_allclose(centre_of_mass(moved) - centre_of_mass(still), [0.1 * SIZE, 0.05 * SIZE], atol=0.5)
    grown = face_mask(SIZE, face_landmarks(), dataclasses.replace(identity_params(), scale=1.1))
    assert grown.sum() == pytest.approx(still.sum() * 1.1 ** 2, rel=0.05)


def test_identity_params_return_the_input_exactly():
    clip = textured_clip()
    landmarks = np.repeat(face_landmarks()[None], FRAMES, axis=0)
    fake, mask, params = make_pseudo_fake(clip, landmarks, 0, params=identity_params())
    np.testing.assert_array_equal(fake, clip)
    assert params == identity_params() and mask.max() == 1
    whole_frame = np.ones((SIZE, SIZE), np.float32)
    np.testing.assert_array_equal(blend_frame(clip[0], whole_frame, identity_params()), clip[0])


def test_same_seed_same_fake_other_seed_another():
    clip = textured_clip()
    first, first_mask, first_params = make_pseudo_fake(clip, None, 7)
    again, again_mask, again_params = make_pseudo_fake(clip, None, np.random.default_rng(7))
    other, _, other_params = make_pseudo_fake(clip, None, 8)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first_mask, again_mask)
    assert first_params == again_params
    assert other_params != first_params
    assert not np.array_equal(other, first)


@pytest.mark.parametrize("seed", range(3))
def test_altered_source_differs_inside_the_mask_and_equals_input_outside(seed):
    clip = textured_clip(seed=seed)
    landmarks = np.repeat(face_landmarks()[None], FRAMES, axis=0)
    fake, mask, _ = make_pseudo_fake(clip, landmarks, seed, params=strong_params(seed))
    difference = np.abs(fake.astype(int) - clip).mean(axis=-1)
    np.testing.assert_array_equal(fake[mask == 0], clip[mask == 0])
    assert difference[mask > 0.9].mean() > 10
    assert (mask == 0).mean() > 0.1  # the check outside covers a real share of the crop


def test_altered_target_changes_the_frame_around_an_untouched_face():
    clip = textured_clip()
    landmarks = np.repeat(face_landmarks()[None], FRAMES, axis=0)
    params = strong_params(alter="target", scale=1.0, shift=(0.0, 0.0))
    fake, mask, _ = make_pseudo_fake(clip, landmarks, 0, params=params)
    difference = np.abs(fake.astype(int) - clip).mean(axis=-1)
    np.testing.assert_array_equal(fake[mask == 1], clip[mask == 1])
    assert difference[mask == 0].mean() > 10


def high_frequency(frames):
    return np.abs(np.stack([cv2.Laplacian(f.astype(np.float32), cv2.CV_32F) for f in frames])).mean()


@pytest.mark.parametrize("change, sharper", [({"downscale": 4}, False), ({"sharpen": 0.5, "sharpen_lightness": 0.7}, True)])
def test_frequency_change_blurs_or_sharpens_the_face(change, sharper):
    clip = textured_clip()
    whole = np.ones((SIZE, SIZE), np.float32)
    fake = np.stack([blend_frame(frame, whole, dataclasses.replace(identity_params(), **change)) for frame in clip])
    ratio = high_frequency(fake) / high_frequency(clip)
    assert (ratio > 1.3) if sharper else (ratio < 0.7)


def test_blend_ratio_scales_the_change():
    clip = textured_clip()
    full, mask, _ = make_pseudo_fake(clip, None, 0, params=strong_params())
    half, _, _ = make_pseudo_fake(clip, None, 0, params=strong_params(blend_ratio=0.5))
    inside = mask > 0.99
    change = lambda fake: np.abs(fake.astype(int) - clip)[:, inside].mean()
    assert change(half) == pytest.approx(change(full) / 2, rel=0.1)


@pytest.mark.parametrize("with_landmarks", [False, True])
def test_static_clip_gives_identical_fake_frames(with_landmarks):
    clip = textured_clip()
    landmarks = np.repeat(face_landmarks()[None], FRAMES, axis=0) if with_landmarks else None
    fake, mask, _ = make_pseudo_fake(clip, landmarks, 3)
    assert not np.array_equal(fake, clip)
    for frame in fake[1:]:
        np.testing.assert_array_equal(frame, fake[0])
    assert mask.shape == ((FRAMES, SIZE, SIZE) if with_landmarks else (SIZE, SIZE))


def test_one_draw_for_the_whole_clip_matches_blend_frame_per_frame():
    clip = textured_clip()
    clip[1:] = textured_clip(seed=1)[1:]  # frames differ, the params must not
    landmarks = np.stack([face_landmarks(dx=2 * t) for t in range(FRAMES)])
    fake, masks, params = make_pseudo_fake(clip, landmarks, 5)
    for t in range(FRAMES):
        np.testing.assert_array_equal(masks[t], face_mask(SIZE, landmarks[t], params))
        np.testing.assert_array_equal(fake[t], blend_frame(clip[t], masks[t], params))


def test_mask_moves_with_each_frames_landmarks():
    landmarks = np.stack([face_landmarks(dx=3 * t) for t in range(FRAMES)])
    _, masks, _ = make_pseudo_fake(textured_clip(), landmarks, 2)
    shifts = [centre_of_mass(mask)[0] - centre_of_mass(masks[0])[0] for mask in masks]
    np.testing.assert_allclose(shifts, 3 * np.arange(FRAMES), atol=0.5)


def test_nan_landmarks_are_missing():
    clip = textured_clip()
    all_nan = np.full((FRAMES, 5, 2), np.nan, np.float32)
    nan_fake, nan_masks, _ = make_pseudo_fake(clip, all_nan, 4)
    none_fake, none_mask, _ = make_pseudo_fake(clip, None, 4)
    np.testing.assert_array_equal(nan_fake, none_fake)
    np.testing.assert_array_equal(nan_masks, np.broadcast_to(none_mask, nan_masks.shape))
    # A frame without landmarks between two with them sits where its neighbours say.
    landmarks = np.stack([face_landmarks(dx=4 * t) for t in range(FRAMES)])
    landmarks[1] = np.nan
    _, masks, params = make_pseudo_fake(clip, landmarks, 4)
    np.testing.assert_array_equal(masks[1], face_mask(SIZE, face_landmarks(dx=4), params))
    np.testing.assert_array_equal(masks[2], face_mask(SIZE, face_landmarks(dx=8), params))


@pytest.mark.parametrize("size", [48, 97])
def test_output_keeps_shape_and_dtype_at_any_size(size):
    clip = textured_clip(frames=2, size=size)
    fake, mask, _ = make_pseudo_fake(clip, np.repeat(face_landmarks(size)[None], 2, axis=0), 1)
    assert fake.shape == clip.shape and fake.dtype == np.uint8
    assert mask.shape == (2, size, size) and mask.dtype == np.float32
    np.testing.assert_array_equal(clip, textured_clip(frames=2, size=size))  # the input is untouched


def test_params_render_the_same_fake_at_another_size():
    params = sample_params(np.random.default_rng(11), SIZE)
    small = face_mask(SIZE, face_landmarks(), params)
    large = face_mask(4 * SIZE, face_landmarks(4 * SIZE), params)
    shrunk = cv2.resize(large, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    assert np.abs(shrunk - small).mean() < 0.02


def test_sampled_params_follow_sbi_and_survive_json():
    draws = [sample_params(np.random.default_rng(seed), SIZE) for seed in range(60)]
    assert {d.mask_kind for d in draws} == {"hull", "ellipse"}
    assert {d.alter for d in draws} == {"source", "target"}
    assert {d.blend_ratio for d in draws} == set(BLEND_RATIOS)
    assert {d.downscale for d in draws} == {1, 2, 4}
    assert all((d.downscale == 1) == (d.sharpen > 0) for d in draws)  # one frequency change, always
    assert all(0.95 <= d.scale <= 1 / 0.95 and abs(d.shift[0]) <= 0.03 and abs(d.shift[1]) <= 0.015 for d in draws)
    assert all(0.9 <= d.contrast <= 1.1 and abs(d.brightness) <= 25.5 for d in draws)
    assert 0.1 < np.mean([any(d.color_shift) for d in draws]) < 0.5  # SBI's RGB shift, probability 0.3
    dense = {sample_params(np.random.default_rng(seed), SIZE, points=68).mask_kind for seed in range(40)}
    assert dense == set(LANDMARK_HULLS)
    restored = BlendParams(**{k: tuple(v) if isinstance(v, list) else v
                              for k, v in json.loads(json.dumps(dataclasses.asdict(draws[0]))).items()})
    assert restored == draws[0]


def test_bad_input_raises_a_clear_error():
    with pytest.raises(ValueError, match="uint8"):
        make_pseudo_fake(textured_clip().astype(np.float32), None, 0)
    with pytest.raises(ValueError, match="landmarks"):
        make_pseudo_fake(textured_clip(), np.zeros((FRAMES, 68, 2), np.float32), 0)
    with pytest.raises(ValueError, match="mask of shape"):
        blend_frame(textured_clip()[0], np.ones((SIZE, SIZE + 1), np.float32), identity_params())
    with pytest.raises(ValueError, match="uint8"):
        blend_frame(textured_clip(), np.ones((SIZE, SIZE), np.float32), identity_params())
    with pytest.raises(ValueError, match="mask kind"):
        face_mask(SIZE, face_landmarks(), dataclasses.replace(identity_params(), mask_kind="square"))
    with pytest.raises(ValueError, match="mask kind 'hull' for 68"):
        face_mask(SIZE, face_68(), identity_params())
    with pytest.raises(ValueError, match="alter"):
        blend_frame(textured_clip()[0], np.ones((SIZE, SIZE), np.float32), BlendParams(alter="both"))
