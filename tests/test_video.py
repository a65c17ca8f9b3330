import subprocess

import numpy as np
import pytest

from dflib.synthetic import write_video
from dflib.video import VideoError, VideoReader, sample_indices


def numbered_frames(n, width=64, height=48, step=10):
    """Frame i has brightness step*i in its top-left block, so a decoded frame tells its index."""
    frames = []
    for i in range(n):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[:16, :16] = step * i
        frames.append(frame)
    return frames


def frame_number(image, step=10):
    return int(round(image[2:14, 2:14].mean() / step))


@pytest.fixture(scope="module")
def numbered_video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("v") / "numbered.mp4", numbered_frames(24), crf=10)


def test_uniform_sampling_spans_whole_video_not_first_frames():
    indices = sample_indices(300, 20)
    assert len(indices) == 20 and indices[0] == 0 and indices[-1] == 299
    assert np.all(np.diff(indices) > 0)
    assert list(sample_indices(300, 5, "first")) == [0, 1, 2, 3, 4]
    assert list(sample_indices(10, 20)) == list(range(10))


def test_stride_sampling_by_step_and_by_fps():
    assert list(sample_indices(10, 3, "stride", stride=4)) == [0, 4, 8]
    assert list(sample_indices(100, 0, "stride", fps=5, video_fps=25))[:3] == [0, 5, 10]
    with pytest.raises(ValueError, match="stride"):
        sample_indices(10, 3, "stride")
    with pytest.raises(ValueError, match="unknown sampling"):
        sample_indices(10, 3, "random")


def test_reader_returns_exactly_the_requested_frames(numbered_video):
    reader = VideoReader(numbered_video)
    assert reader.n_frames == 24
    wanted = [0, 5, 6, 17, 23]
    got, images = reader.read(wanted)
    assert got == wanted
    assert [frame_number(image) for image in images] == wanted
    assert images[0].shape == (48, 64, 3) and images[0].dtype == np.uint8


def test_reader_frames_are_rgb(tmp_path):
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 220
    path = write_video(tmp_path / "red.mp4", [red] * 3)
    _, images = VideoReader(path).read([1])
    r, g, b = images[0].reshape(-1, 3).mean(axis=0)
    assert r > 180 and g < 60 and b < 60


def test_rotation_metadata_is_applied(tmp_path, numbered_video):
    import imageio_ffmpeg

    rotated = tmp_path / "rotated.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-display_rotation", "90",
                    "-i", str(numbered_video), "-c", "copy", str(rotated)], check=True)
    reader = VideoReader(rotated)
    info = reader.info()
    assert (info.width, info.height, info.rotation) == (48, 64, 90)
    _, images = reader.read([3])
    # The marker block (top-left when upright) is bottom-left after a 90 degree counter-clockwise turn.
    assert images[0].shape == (64, 48, 3)
    assert images[0][-14:-2, 2:14].mean() == pytest.approx(30, abs=4)


def test_metadata_in_another_encoding_than_utf8_opens_on_every_pyav(tmp_path, numbered_video):
    """A latin-1 title tag: PyAV < 19 raises UnicodeDecodeError on open unless told to ignore it, and
    PyAV 19 raises TypeError if told (it has no such argument). Either way the video must read."""
    import imageio_ffmpeg

    tagged = tmp_path / "tagged.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(numbered_video),
                    "-c", "copy", "-metadata", "title=cafX", str(tagged)], check=True)
    data = tagged.read_bytes()
    assert data.count(b"cafX") == 1
    latin1 = tmp_path / "latin1_title.mp4"
    latin1.write_bytes(data.replace(b"cafX", b"caf\xe9"))
    reader = VideoReader(latin1)
    assert reader.n_frames == 24
    _, images = reader.read([7])
    assert frame_number(images[0]) == 7


def test_grayscale_and_odd_size_videos_decode_to_rgb(tmp_path):
    import imageio_ffmpeg

    source = write_video(tmp_path / "src.mp4", numbered_frames(5, 66, 50))
    odd = tmp_path / "gray_odd.mkv"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(source),
                    "-vf", "scale=65:49", "-pix_fmt", "gray", "-c:v", "ffv1", str(odd)], check=True)
    got, images = VideoReader(odd).read([0, 4])
    assert got == [0, 4] and images[0].shape == (49, 65, 3)


def test_variable_frame_rate_timestamps(tmp_path):
    import av

    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=1000)
        stream.width, stream.height, stream.time_base = 32, 32, __import__("fractions").Fraction(1, 1000)
        for i, pts in enumerate([0, 40, 80, 300, 340, 1000]):
            frame = av.VideoFrame.from_ndarray(numbered_frames(6, 32, 32)[i], format="rgb24")
            frame.pts, frame.time_base = pts, stream.time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    reader = VideoReader(path)
    assert reader.n_frames == 6
    assert list(np.round(reader.timestamps(range(6)), 3)) == [0, 0.04, 0.08, 0.3, 0.34, 1.0]
    got, images = reader.read([3, 5])
    assert [frame_number(i) for i in images] == [3, 5]


@pytest.mark.parametrize("content, cause", [
    (b"", "empty file"),
    (b"this is a text file, not a video\n" * 20, "not a readable video"),
    (bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)), "not a readable video"),
])
def test_bad_files_name_the_file_and_cause(tmp_path, content, cause):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoError, match=cause) as error:
        VideoReader(path)
    assert str(path) in str(error.value)
    assert error.value.cause.startswith(cause) and str(path) not in error.value.cause  # for rows that name the file
    import pickle

    assert str(pickle.loads(pickle.dumps(error.value))) == str(error.value)  # crosses worker processes


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(VideoError, match="file not found"):
        VideoReader(tmp_path / "nope.mp4")
    with pytest.raises(VideoError, match="folder"):
        VideoReader(tmp_path)


def test_truncated_video_gives_the_frames_before_the_damage(tmp_path, numbered_video):
    data = numbered_video.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    try:
        reader = VideoReader(truncated)
    except VideoError as error:  # the index (moov) may be what was cut: then it is unreadable
        assert "truncated.mp4" in str(error)
        return
    got, images = reader.read(range(reader.n_frames))
    assert len(got) == len(images) and len(got) <= 24
    assert [frame_number(i) for i in images] == got


def test_sample_clips_decode_the_frames_opencv_shows(sample_data):
    import cv2

    path = sample_data / "videos" / "vexpress_vasa1_emo__RD_Radio10_0_clip_0.mp4"
    reader = VideoReader(path)
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.grab():
        count += 1
    assert reader.n_frames == count  # pre-roll frames of the edit list are not counted
    got, images = reader.read([0, count - 1])
    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
    ok, first = capture.read()
    assert ok and np.abs(cv2.cvtColor(first, cv2.COLOR_BGR2RGB).astype(int) - images[0]).mean() < 1


def test_snapping_takes_the_nearest_reference_frame_exactly_decoded(tmp_path):
    path = write_video(tmp_path / "bframes.mp4", numbered_frames(60, step=4), crf=10)  # x264: B-frames between references
    reader = VideoReader(path)
    wanted = [int(i) for i in sample_indices(60, 8)]
    got, images = reader.read(wanted, snap_to_reference=True)
    assert len(got) == len(wanted) and got != wanted  # some sampled frames were B-frames, none lost
    assert all(abs(g - w) <= 2 for g, w in zip(got, wanted))
    assert [frame_number(image, step=4) for image in images] == got  # each image is the frame its index names
    exact, exact_images = reader.read(got)
    assert exact == got and all(np.array_equal(a, b) for a, b in zip(images, exact_images))
    # Dense sampling is never snapped: every frame asked for is a frame needed.
    assert reader.read(range(10, 20), snap_to_reference=True)[0] == list(range(10, 20))


def test_frames_stream_from_a_background_thread_and_errors_reach_the_caller(numbered_video):
    from dflib.video import read_ahead

    reader = VideoReader(numbered_video)
    assert [index for index, _ in reader.read_ahead([1, 5, 9])] == [1, 5, 9]

    def broken():
        yield 1
        raise OSError("disk gone")

    stream = read_ahead(broken())
    assert next(stream) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(stream)
    early = read_ahead(iter(range(1000)), depth=2)
    assert next(early) == 0
    early.close()  # stops the producer


def test_writing_the_same_frames_twice_gives_the_same_file(tmp_path):
    """Synthetic data (the demo, the tests) is reproducible only if its encoder is: x264's AVX-512
    code gave a different file on almost every encode."""
    from dflib.synthetic import render_pair

    frames = render_pair("astronaut", 1, 0, 24, 320, 240).real.frames
    files = [write_video(tmp_path / f"clip{i}.mp4", frames).read_bytes() for i in range(4)]
    assert all(data == files[0] for data in files[1:])


def _raw_h264(mp4, path):
    """The same stream without a container: no frame count or duration in any header, only packets."""
    import av

    with av.open(str(mp4)) as source, av.open(str(path), "w", format="h264") as target:
        stream = target.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                target.mux(packet)
    return path


def test_a_video_with_too_many_frames_is_refused_before_decoding(tmp_path, numbered_video):
    assert VideoReader(numbered_video, max_video_frames=24).n_frames == 24
    with pytest.raises(VideoError, match=r"about 24 frames, over the limit of 23 \(max_video_frames\): refused "
                                         "before decoding") as error:
        VideoReader(numbered_video, max_video_frames=23)  # its header says 24 frames
    assert str(numbered_video) in str(error.value)
    # No header to go by: the packets are counted as they are read, and reading stops at the limit.
    with pytest.raises(VideoError, match=r"at least 24 frames, over the limit of 23"):
        VideoReader(_raw_h264(numbered_video, tmp_path / "numbered.h264"), max_video_frames=23)


def test_huge_frames_are_refused_before_decoding(huge_frame_video, numbered_video):
    with pytest.raises(VideoError, match=r"frames of 8192x8192 pixels, more than the limit of 16,777,216 pixels "
                                         r"\(max_frame_pixels\): refused before decoding"):
        VideoReader(huge_frame_video)  # the default limit
    assert VideoReader(numbered_video, max_frame_pixels=64 * 48).n_frames == 24
    with pytest.raises(VideoError, match="frames of 64x48 pixels"):
        VideoReader(numbered_video, max_frame_pixels=64 * 48 - 1)


def test_an_image_ffmpeg_cannot_decode_is_not_a_video(tmp_path):
    svg = tmp_path / "drawing.mp4"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="9" height="9"/></svg>')
    with pytest.raises(VideoError, match=r"not a video \(FFmpeg reads it as svg_pipe, which it cannot decode\)"):
        VideoReader(svg)
