"""``dflib app``: the page's wording and guards, and the page itself driven in headless Chromium.

The server runs in this process on a free local port, with every connection to anything but this
machine refused and recorded: the page must work offline and report to no one. The browser is
Debian's ``chromium`` with its ``chromedriver`` (``apt-get install chromium chromium-driver``);
those tests skip, saying so, where they are missing. Nothing is downloaded.
"""
from __future__ import annotations

import shutil
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dflib.app import example_videos, notebook_app, track_rows, verdict_html
from dflib.cli import main
from dflib.config import AppConfig
from dflib.prediction import Prediction, Predictor, TrackScore
from tiny_checkpoint import tiny_checkpoint

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1700"]
LIMIT_MB = 2.0
SAMPLE_CLIP = "vexpress_vasa1_emo__RD_Radio10_0_clip_0.mp4"  # the smallest sample clip, 140 kB


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", seed=3)


# --- wording and guards, no server ----------------------------------------------------------


def test_app_without_gradio_says_how_to_install(monkeypatch, capsys, checkpoint):
    monkeypatch.setitem(sys.modules, "gradio", None)  # makes `import gradio` fail
    assert main(["app", "--checkpoint", str(checkpoint)]) == 2
    assert "pip install 'dflib[app]'" in capsys.readouterr().err


def test_no_face_and_error_are_explained_in_plain_words():
    no_face = verdict_html(Prediction(video="/up/clip <1>.mp4", label="NO_FACE", reason="no face found in 20 frames"))
    assert "NO_FACE" in no_face and "no face found in 20 frames" in no_face and "nothing to judge" in no_face
    assert "clip &lt;1&gt;.mp4" in no_face and "/up/" not in no_face  # the file's name, escaped; no server path
    error = verdict_html(Prediction(video="x.mp4", label="ERROR", reason="not a readable video (Invalid data)"))
    assert "could not be checked: not a readable video (Invalid data)" in error
    assert "confidence" not in no_face + error


def test_verdict_gives_confidence_and_every_track():
    tracks = [TrackScore(0, 0.2, [], [], [], 9), TrackScore(1, 0.9, [], [], [], 7)]
    fake = Prediction(video="v.mp4", label="FAKE", p_fake=0.9, confidence=0.9, faces=2, tracks=tracks, track=1,
                      frames_used=7, frames_sampled=10)
    shown = verdict_html(fake, note="Grad-CAM needs PyTorch")
    assert "FAKE: 90.0% confidence" in shown and "track 1, the most suspicious" in shown
    assert "No heatmaps: Grad-CAM needs PyTorch" in shown
    assert track_rows(fake) == [[0, 0.2, "REAL", 9], [1, 0.9, "FAKE", 7]]


def test_examples_are_the_held_out_videos_still_on_disk(tmp_path):
    for name in ("a.mp4", "b.mp4", "sub/c.mp4"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    ckpt = {"preprocess": {"videos": str(tmp_path)},
            "splits": {"a.mp4": "train", "b.mp4": "test", "sub/c.mp4": "test", "gone.mp4": "test"}}
    assert example_videos(AppConfig(), ckpt) == {"b.mp4": tmp_path / "b.mp4", "sub/c.mp4": tmp_path / "sub/c.mp4"}
    assert set(example_videos(AppConfig(examples=str(tmp_path)), {})) == {"a.mp4", "b.mp4", "sub/c.mp4"}
    assert example_videos(AppConfig(), {}) == {}
    with pytest.raises(FileNotFoundError, match="no such folder"):
        example_videos(AppConfig(examples=str(tmp_path / "missing")), {})


def test_notebook_starts_the_app_only_when_asked(checkpoint, capsys):
    assert notebook_app(Predictor(checkpoint, device="cpu"), start="auto") is None  # not on Colab
    assert "LAUNCH_APP = True" in capsys.readouterr().out


def test_command_line_listens_on_localhost_unless_told(monkeypatch, checkpoint):
    pytest.importorskip("gradio", reason="the web app needs dflib[app]")
    import dflib.app

    class Served:
        local_url, share_url = "http://127.0.0.1:7860/", None

        def block_thread(self):
            pass

    seen = []
    monkeypatch.setattr(dflib.app, "launch", lambda predictor, cfg: seen.append(cfg) or Served())
    assert main(["app", "--checkpoint", str(checkpoint), "--device", "cpu"]) == 0
    assert (seen[0].host, seen[0].share, seen[0].concurrency) == ("127.0.0.1", False, 1)
    assert main(["app", "--checkpoint", str(checkpoint), "--device", "cpu", "--host", "0.0.0.0", "--share"]) == 0
    assert (seen[1].host, seen[1].share) == ("0.0.0.0", True)


def test_a_server_that_would_take_no_job_is_refused(predictor):
    pytest.importorskip("gradio", reason="the web app needs dflib[app]")
    from dflib.app import build_app

    with pytest.raises(ValueError, match="--concurrency and --queue-size must be at least 1"):
        build_app(predictor, AppConfig(concurrency=0))


# --- a running server -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _local(host) -> bool:
    return host in (None, "", "localhost", "::1") or (isinstance(host, str) and host.startswith("127."))


@pytest.fixture(scope="module")
def outside_connections():
    """Connections (and name lookups) this process tried beyond this machine: refused and listed."""
    tried = []
    connect, lookup = socket.socket.connect, socket.getaddrinfo

    def guarded_connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            tried.append(address)
            raise OSError(f"test: connection to {address} refused, the app must work offline")
        return connect(sock, address)

    def guarded_lookup(host, *args, **kwargs):
        if not _local(host.decode() if isinstance(host, bytes) else host):
            tried.append(host)
            raise socket.gaierror(f"test: lookup of {host} refused, the app must work offline")
        return lookup(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", guarded_connect)
        patch.setattr(socket, "getaddrinfo", guarded_lookup)
        yield tried


@pytest.fixture(scope="module")
def gradio_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("gradio_cache")
        patch.setenv("GRADIO_TEMP_DIR", str(folder))
        yield folder


def _serve(predictor: Predictor, **options):
    from dflib.app import launch

    return launch(predictor, AppConfig(port=_free_port(), max_file_size_mb=LIMIT_MB, **options))


@pytest.fixture(scope="module")
def predictor(checkpoint):
    return Predictor(checkpoint, device="cpu")


@pytest.fixture(scope="module")
def served(outside_connections, gradio_cache, predictor):
    pytest.importorskip("gradio", reason="the web app needs dflib[app]")
    demo = _serve(predictor)
    yield demo
    demo.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver", reason="the browser tests need selenium (dflib[test])")
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("Chromium and chromedriver not found: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    # Both paths given, so Selenium Manager neither looks for nor downloads a browser or driver.
    session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    yield session
    session.quit()


def _check_in_browser(browser, url: str, video: Path) -> str:
    """Open the page, upload ``video`` and return the verdict's text once it is there."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))
    browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(video))

    def verdict(b):
        text = b.find_element(By.ID, "verdict").text
        return text if any(word in text for word in ("confidence", "ERROR", "NO_FACE")) else None

    return WebDriverWait(browser, 180).until(verdict)


def _loaded(browser, selector: str) -> bool:
    """An image decoded (natural width > 0) or a video whose metadata loaded (readyState >= 1)."""
    from selenium.webdriver.support.ui import WebDriverWait

    script = ("const e = document.querySelector(arguments[0]);"
              "return e ? (e.tagName === 'VIDEO' ? e.readyState >= 1 : e.complete && e.naturalWidth > 0) : false;")
    try:
        return WebDriverWait(browser, 30).until(lambda b: b.execute_script(script, selector))
    except Exception:  # noqa: BLE001 - a timeout means: not shown
        return False


def _copy(video: Path, folder: Path) -> Path:
    """A copy to upload, so that what the test checks is ours and not the shared sample."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(video, folder / video.name))


@pytest.fixture(scope="module")
def clip(sample_data_or_none, face_video, tmp_path_factory) -> Path:
    """A real sample clip where there is one, else a generated face clip."""
    source = sample_data_or_none / "videos" / SAMPLE_CLIP if sample_data_or_none else face_video
    return _copy(source, tmp_path_factory.mktemp("upload"))


@pytest.mark.slow
def test_page_checks_an_uploaded_video(served, browser, predictor, clip, gradio_cache, outside_connections):
    expected = predictor(clip)
    assert expected.label in ("FAKE", "REAL")
    text = _check_in_browser(browser, served.local_url, clip)
    assert f"{expected.label}: {100 * expected.confidence:.1f}% confidence" in text
    assert clip.name in text and f"P(FAKE) = {expected.p_fake:.3f}" in text
    for shown in ("#timeline img", "#full-frame img", "#grid img", "#annotated video"):
        assert _loaded(browser, shown), f"{shown} not shown"
    # Everything the page loaded came from this server: nothing from outside.
    origin = served.local_url.rstrip("/")
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(name.startswith((origin, "data:", "blob:")) for name in loaded), loaded
    # The upload left the server once checked; the user's own file is untouched.
    assert not list(gradio_cache.rglob(clip.name)) and clip.is_file()
    assert outside_connections == []
    screenshot = Path(tempfile.gettempdir()) / "dflib_app_page.png"
    browser.save_screenshot(str(screenshot))  # to look at; docs/app.png was made the same way


@pytest.mark.slow
def test_page_says_why_a_text_file_named_mp4_cannot_be_checked(served, browser, tmp_path):
    fake_video = tmp_path / "notes.mp4"
    fake_video.write_text("these are my notes, not a video\n")
    text = _check_in_browser(browser, served.local_url, fake_video)
    assert "ERROR: this file could not be checked" in text
    assert "could not be checked: not a readable video" in text and "notes.mp4" in text


@pytest.mark.slow
def test_page_lists_every_face_track_when_started_with_all_tracks(served, browser, checkpoint, two_faces_video,
                                                                   tmp_path):
    from selenium.webdriver.common.by import By

    text = _check_in_browser(browser, served.local_url, _copy(two_faces_video, tmp_path / "main"))
    assert "1 face track(s)" in text  # by default the main face, as in training
    every = Predictor(checkpoint, device="cpu", all_tracks=True)
    expected = every(two_faces_video)
    assert expected.faces == 2
    demo = _serve(every)
    try:
        text = _check_in_browser(browser, demo.local_url, _copy(two_faces_video, tmp_path / "all"))
        assert "2 face track(s)" in text and f"track {expected.track}, the most suspicious" in text
        table = browser.find_element(By.ID, "tracks").text
    finally:
        demo.close()
    assert all(f"{track.p_fake:.4f}".rstrip("0") in table for track in expected.tracks), table


@pytest.mark.slow
def test_page_checks_an_example_and_leaves_it_where_it_is(outside_connections, gradio_cache, predictor, browser,
                                                          clip, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    example = _copy(clip, tmp_path / "examples")
    demo = _serve(predictor, examples=str(example.parent))
    try:
        browser.get(demo.local_url)
        WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.ID, "check-example"))
        browser.find_element(By.ID, "check-example").click()
        text = WebDriverWait(browser, 180).until(
            lambda b: "confidence" in b.find_element(By.ID, "verdict").text and b.find_element(By.ID, "verdict").text)
    finally:
        demo.close()
    assert f"{100 * predictor(example).confidence:.1f}% confidence" in text and example.name in text
    assert example.is_file() and outside_connections == []


def _post_upload(url: str, name: str, size: int) -> int:
    boundary = "dflibtestboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            "Content-Type: video/mp4\r\n\r\n").encode() + b"\0" * size + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{url}gradio_api/upload", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.slow
def test_an_upload_over_the_limit_is_refused_and_the_server_stays_up(served, gradio_cache):
    assert _post_upload(served.local_url, "small.mp4", 1000) == 200
    assert _post_upload(served.local_url, "huge.mp4", int((LIMIT_MB + 1) * 2**20)) == 413
    assert not list(gradio_cache.rglob("huge.mp4"))
    with urllib.request.urlopen(served.local_url, timeout=30) as page:
        assert page.status == 200


class _SlowPredictor(Predictor):
    """Records when each job ran, and takes long enough for a second job to have to wait.

    The record is the class's, so the app's copies of this predictor (one per concurrent job) share it.
    """

    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    def run(self, video_path):
        started = time.monotonic()
        time.sleep(1.5)
        result = super().run(video_path)
        with self.lock:
            self.spans.append((started, time.monotonic()))
        return result


@pytest.mark.slow
def test_one_video_at_a_time_and_the_others_see_their_place(outside_connections, gradio_cache, checkpoint,
                                                            face_video, two_faces_video, clip):
    pytest.importorskip("gradio", reason="the web app needs dflib[app]")
    from gradio_client import Client, handle_file
    from gradio_client.utils import Status

    slow = _SlowPredictor(checkpoint, device="cpu")
    slow.spans.clear()
    demo = _serve(slow)
    try:
        client = Client(demo.local_url, verbose=False)
        # Three different videos: identical uploads share one file, which the page claims first.
        jobs = [client.submit(handle_file(str(video)), api_name="/check_upload")
                for video in (face_video, two_faces_video, clip)]
        waiting = []  # (place, queue length) of jobs seen waiting; they reach the queue in any order
        while not all(job.done() for job in jobs):
            for job in jobs:
                status = job.status()
                if status.code == Status.IN_QUEUE and status.rank is not None:
                    waiting.append((status.rank, status.queue_size))
            time.sleep(0.05)
        assert all("confidence" in job.result()[0] for job in jobs)
    finally:
        demo.close()
    spans = sorted(slow.spans)
    assert len(spans) == 3 and all(spans[i][1] <= spans[i + 1][0] for i in range(2)), "jobs overlapped"
    assert waiting and max(rank for rank, _ in waiting) >= 1, "no job behind another saw its place in the queue"


@pytest.mark.slow
def test_two_jobs_at_once_each_get_their_own_model_and_the_right_scores(outside_connections, gradio_cache,
                                                                         checkpoint, face_video, two_faces_video):
    pytest.importorskip("gradio", reason="the web app needs dflib[app]")
    from gradio_client import Client, handle_file

    slow = _SlowPredictor(checkpoint, device="cpu")
    videos = (face_video, two_faces_video)
    expected = [f"{100 * slow(video).confidence:.1f}% confidence" for video in videos]
    slow.spans.clear()
    demo = _serve(slow, concurrency=2)
    try:
        client = Client(demo.local_url, verbose=False)
        jobs = [client.submit(handle_file(str(video)), api_name="/check_upload") for video in videos]
        shown = [job.result()[0] for job in jobs]
    finally:
        demo.close()
    assert all(text in verdict for text, verdict in zip(expected, shown, strict=True))
    (first_start, first_end), (second_start, _) = sorted(slow.spans)
    assert second_start < first_end, "the two jobs did not run at the same time"
