"""Photographs as one-frame clips: preprocessed like videos, trained on beside them, and refused
with a plain reason when they are broken, faceless or built to fill memory."""
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from dflib.config import PreprocessConfig
from dflib.image import ImageReader, read_image
from dflib.preprocess import preprocess, read_manifest_rows
from dflib.synthetic import face_photo
from dflib.video import VideoError


def save_rgb(path, rgb, **options):
    Image.fromarray(rgb).save(path, **options)
    return path


def png_header_only(path, width, height):
    """A valid PNG that declares width x height pixels and holds almost none: a decompression bomb."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    face = face_photo()
    save_rgb(folder / "face.jpg", face, quality=95)
    save_rgb(folder / "face.webp", face)
    save_rgb(folder / "sky.png", np.full((200, 300, 3), (120, 170, 230), np.uint8))
    (folder / "notes.jpg").write_text("not an image")
    (folder / "cut.jpg").write_bytes((folder / "face.jpg").read_bytes()[:600])
    png_header_only(folder / "bomb.png", 50_000, 50_000)
    (folder / "labels.csv").write_text("filename,label\nface.jpg,REAL\nface.webp,FAKE\nsky.png,REAL\n"
                                       "notes.jpg,REAL\ncut.jpg,REAL\nbomb.png,REAL\n")
    return folder


@pytest.fixture(scope="module")
def preprocessed(photos, tmp_path_factory):
    out = tmp_path_factory.mktemp("crops")
    preprocess(PreprocessConfig(videos=str(photos), labels=str(photos / "labels.csv"), out=str(out), size=64,
                                frames=20, min_frames=10), progress=False)
    return out, {row.filename: row for row in read_manifest_rows(out)}


def test_a_photo_is_a_clip_of_one_frame_whatever_min_frames_says(preprocessed):
    out, rows = preprocessed
    from dflib.cropfile import load_clip

    for name in ("face.jpg", "face.webp"):
        assert rows[name].status == "ok" and rows[name].frames == 1 and rows[name].video_frames == 1
        clip = load_clip(out / rows[name].output)
        assert clip.crops.shape == (1, 64, 64, 3) and clip.landmarks.shape == (1, 5, 2)
    assert rows["face.webp"].label == "FAKE"


def test_a_photo_without_a_face_is_skipped_with_that_reason(preprocessed):
    row = preprocessed[1]["sky.png"]
    assert (row.status, row.reason) == ("skipped", "no face found in the photo")


@pytest.mark.parametrize("name, words", [("notes.jpg", "not a readable image"), ("cut.jpg", "corrupt image"),
                                         ("bomb.png", "image too large: 50000x50000")])
def test_broken_photos_fail_with_a_plain_reason(preprocessed, name, words):
    row = preprocessed[1][name]
    assert row.status == "failed" and words in row.reason


def test_a_decompression_bomb_is_refused_before_any_pixel_is_decoded(photos):
    import tracemalloc

    tracemalloc.start()
    with pytest.raises(VideoError, match="not decoded"):
        read_image(photos / "bomb.png")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50_000_000  # the declared image would need 7.5 GB


def test_a_phone_photo_is_read_upright_by_its_exif_orientation(tmp_path):
    upright = np.ascontiguousarray(face_photo()[:, :180])  # taller than wide
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # as a phone held sideways writes it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = save_rgb(tmp_path / "phone.jpg", stored, quality=95, exif=exif)
    image = read_image(path)
    assert image.shape == upright.shape
    assert np.abs(image.astype(int) - upright).mean() < 6
    assert ImageReader(path).info().height == upright.shape[0]


def test_a_photo_of_another_name_than_its_format_still_reads(tmp_path):
    path = tmp_path / "face.jpg"
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(face_photo(), cv2.COLOR_RGB2BGR))
    path.write_bytes(encoded.tobytes())
    assert read_image(path).shape == face_photo().shape
