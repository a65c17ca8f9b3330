"""Shared fixtures. Threads are capped before torch loads: 2 spinning OpenMP threads on a shared
2-core machine make everything 2-3x slower."""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_collection_modifyitems(items):
    """Tests whose inputs are the sample clips where present and generated ones elsewhere are marked
    ``either_sample_data``: ``make test-no-shared`` runs them again with the clips hidden, so both
    ways are tested where ../shared/data exists (CI) as well as where it does not (a fresh clone)."""
    for item in items:
        used = getattr(item, "fixturenames", ())
        if "sample_data_or_none" in used and "sample_data" not in used:  # not those that skip without them
            item.add_marker(pytest.mark.either_sample_data)


@pytest.fixture(scope="session")
def sample_data_or_none() -> Path | None:
    """The real sample clips beside the checkout (../shared/data, or $DFLIB_SAMPLE_DATA), if present."""
    root = Path(os.environ.get("DFLIB_SAMPLE_DATA", SHARED_DATA))
    return root if (root / "videos").is_dir() else None


@pytest.fixture(scope="session")
def sample_data(sample_data_or_none) -> Path:
    """The sample clips; tests using it skip cleanly without them."""
    if sample_data_or_none is None:
        pytest.skip(f"sample data not found at {os.environ.get('DFLIB_SAMPLE_DATA', SHARED_DATA)}")
    return sample_data_or_none


@pytest.fixture(scope="session")
def face_video(tmp_path_factory) -> Path:
    """A 1.2 s synthetic video of a real face photograph drifting over a background."""
    from dflib.synthetic import moving_face_frames, write_video

    return write_video(tmp_path_factory.mktemp("videos") / "face.mp4", moving_face_frames(12))


@pytest.fixture(scope="session")
def noise_video(tmp_path_factory) -> Path:
    from dflib.synthetic import noise_frames, write_video

    return write_video(tmp_path_factory.mktemp("videos") / "noise.mp4", noise_frames(8))


@pytest.fixture(scope="session")
def two_faces_video(tmp_path_factory):
    """One face and its mirror image, far apart, drifting in opposite directions."""
    import cv2
    import numpy as np

    from dflib.synthetic import face_photo, write_video

    rng = np.random.default_rng(1)
    face = cv2.resize(face_photo(), (85, 100), interpolation=cv2.INTER_AREA)
    background = cv2.GaussianBlur(rng.integers(40, 200, (240, 320, 3), dtype=np.uint8), (0, 0), 8)
    frames = []
    for t in range(10):
        frame = background.copy()
        frame[40 + t:140 + t, 20 + 2 * t:105 + 2 * t] = face
        frame[100 - t:200 - t, 210 - t:295 - t] = face[:, ::-1]
        frames.append(frame)
    return write_video(tmp_path_factory.mktemp("videos") / "two_faces.mp4", frames)


@pytest.fixture(scope="session")
def huge_frame_video(tmp_path_factory) -> Path:
    """Two black 8192x8192 frames in 16 kB: what costs is decoding them (~270 MB per frame as RGB and YUV)."""
    import numpy as np

    from dflib.synthetic import write_video

    return write_video(tmp_path_factory.mktemp("videos") / "huge.mp4", [np.zeros((8192, 8192, 3), np.uint8)] * 2)
