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
from app_clients import cut_off_upload, file_input, get, join, post_upload, results, run
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
    monkeypatch.setattr(dflib.app, "stop", lambda demo: None)
    assert main(["app", "--checkpoint", str(checkpoint), "--device", "cpu"]) == 0
    assert (seen[0].host, seen[0].share, seen[0].concurrency) == ("127.0.0.1", False, 1)
    assert main(["app", "--checkpoint", str(checkpoint), "--device", "cpu", "--host", "0.0.0.0", "--share"]) == 0
    assert (seen[1].host, seen[1].share) == ("0.0.0.0", True)


def test_a_server_that_would_take_no_job_is_refused(predictor):
    pytest.importorskip("gradio", reason="the web app needs dflib[app]")
    from dflib.app import build_app

    with pytest.raises(ValueError, match="--concurrency and --queue-size must be at least 1"):
        build_app(predictor, AppConfig(concurrency=0))
    with pytest.raises(ValueError, match="--time-limit-s must be 0"):
        build_app(predictor, AppConfig(time_limit_s=-1))


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


def stop(demo) -> None:
    import dflib.app

    dflib.app.stop(demo)


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
    stop(demo)


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
        stop(demo)
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
        stop(demo)
    assert f"{100 * predictor(example).confidence:.1f}% confidence" in text and example.name in text
    assert example.is_file() and outside_connections == []


@pytest.mark.slow
def test_an_upload_over_the_limit_is_refused_and_the_server_stays_up(served, gradio_cache):
    assert post_upload(served.local_url, "small.mp4", b"\0" * 1000)[0] == 200
    assert post_upload(served.local_url, "huge.mp4", b"\0" * int((LIMIT_MB + 1) * 2**20))[0] == 413
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
        stop(demo)
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
        stop(demo)
    assert all(text in verdict for text, verdict in zip(expected, shown, strict=True))
    (first_start, first_end), (second_start, _) = sorted(slow.spans)
    assert second_start < first_end, "the two jobs did not run at the same time"


# --- attacks and mishaps: each test below failed before the app guarded against it -------------


def _cached_files(cache: Path) -> list[Path]:
    return [path for path in cache.rglob("*") if path.is_file()]


def _verdict(message: dict) -> str:
    """The verdict's text as the page shows it."""
    import html

    assert message["success"], message
    return html.unescape(message["output"]["data"][0])


@pytest.mark.slow
def test_the_same_video_checked_at_once_by_several_clients_gets_every_verdict(outside_connections, gradio_cache,
                                                                              predictor, face_video):
    """Gradio hands identical uploads one file: the first check to end used to delete it under the others."""
    expected = f"{100 * predictor(face_video).confidence:.1f}% confidence"
    demo = _serve(predictor)
    try:
        url = demo.local_url
        (status, (path,)), content = post_upload(url, "clip.mp4", face_video.read_bytes()), face_video.read_bytes()
        assert post_upload(url, "clip.mp4", content)[1] == [path]  # the same file for the same video
        # Two pages (each claims its upload at once) and three API callers that claim nothing.
        for page in ("page-1", "page-2"):
            assert run(url, "claim", [file_input(path)], page)["success"]
        for session in ("page-1", "page-2", "api-1", "api-2", "api-3"):
            assert "event_id" in join(url, "check_upload", [file_input(path, "clip.mp4")], session)
        shown = [_verdict(message) for session in ("page-1", "page-2", "api-1", "api-2", "api-3")
                 for message in results(url, session)]
        assert len(shown) == 5 and all(expected in verdict and "clip.mp4" in verdict for verdict in shown), shown
        assert not Path(path).exists()  # gone once no check needs it
    finally:
        stop(demo)


@pytest.mark.slow
def test_a_session_cannot_delete_another_sessions_upload_or_result(outside_connections, gradio_cache, predictor,
                                                                   face_video):
    demo = _serve(predictor)
    try:
        url = demo.local_url
        _, (upload,) = post_upload(url, "victim.mp4", face_video.read_bytes())
        assert run(url, "claim", [file_input(upload)], "victim")["success"]
        # The victim's result images lie in the cache too, under paths the page shows.
        shown = run(url, "check_upload", [file_input(upload, "victim.mp4")], "first-look")["output"]["data"]
        result = shown[2]["path"]
        assert Path(result).is_file() and Path(upload).is_file()  # still claimed by the victim
        for target in (upload, result):  # the attacker checks them as its own uploads, claimed or not
            run(url, "check_upload", [file_input(target, "x.mp4")], "attacker")
            assert run(url, "claim", [file_input(target)], "attacker")["success"]
            run(url, "check_upload", [file_input(target, "x.mp4")], "attacker")
        assert Path(upload).is_file() and Path(result).is_file()
        assert "confidence" in _verdict(run(url, "check_upload", [file_input(upload, "victim.mp4")], "victim"))
        assert not Path(upload).exists()  # the victim's own check let it go
    finally:
        stop(demo)


@pytest.mark.slow
def test_a_name_starting_with_a_dot_gets_a_verdict(served, predictor, face_video):
    expected = f"{100 * predictor(face_video).confidence:.1f}% confidence"
    for name in (".mp4", "..mp4", "./.mp4"):
        status, (path,) = post_upload(served.local_url, name, face_video.read_bytes())
        verdict = _verdict(run(served.local_url, "check_upload", [file_input(path, name)], f"dot-{name}"))
        assert status == 200 and expected in verdict, (name, verdict)


@pytest.mark.slow
def test_only_the_hosts_the_app_was_started_for_are_answered(served):
    port = served.server_port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "127.0.0.1"):
        assert get(f"{served.local_url}config", host) == 200, host
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example"):  # a DNS-rebinding page
        assert get(f"{served.local_url}config", host) == 400, host


def test_allowed_hosts_are_the_address_given_and_those_named():
    from dflib.app import allowed_hosts

    assert "evil.example" not in allowed_hosts(AppConfig())
    assert allowed_hosts(AppConfig(host="0.0.0.0")) == ["*"]  # every address of the machine
    named = allowed_hosts(AppConfig(host="0.0.0.0", allowed_hosts="dflib.lan, proxy.example"))
    assert {"dflib.lan", "proxy.example", "localhost"} <= set(named) and "*" not in named


@pytest.mark.slow
def test_a_file_that_is_no_video_or_too_costly_gets_a_reason_in_plain_words(served, huge_frame_video):
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="9" height="9"/></svg>'
    for name, content, reason in [
        ("drawing.mp4", svg, "not a video (FFmpeg reads it as svg_pipe, which it cannot decode)"),
        ("huge.mp4", huge_frame_video.read_bytes(), "frames of 8192x8192 pixels, more than the limit"),
    ]:
        _, (path,) = post_upload(served.local_url, name, content)
        verdict = _verdict(run(served.local_url, "check_upload", [file_input(path, name)], f"bad-{name}"))
        assert "ERROR: this file could not be checked" in verdict and reason in verdict, verdict
        assert "unexpected error" not in verdict and "Error" not in verdict


class _StuckPredictor(Predictor):
    """Takes far longer than the app's time limit on a video named stuck*."""

    def run(self, video_path):
        if Path(video_path).name.startswith("stuck"):
            time.sleep(10)
        return super().run(video_path)


@pytest.mark.slow
def test_a_check_past_the_time_limit_is_answered_and_the_next_one_still_runs(outside_connections, gradio_cache,
                                                                            checkpoint, face_video):
    demo = _serve(_StuckPredictor(checkpoint, device="cpu"), time_limit_s=5)
    try:
        url = demo.local_url
        started = time.monotonic()
        _, (stuck,) = post_upload(url, "stuck.mp4", face_video.read_bytes())
        verdict = _verdict(run(url, "check_upload", [file_input(stuck, "stuck.mp4")], "slow"))
        assert "the check took longer than this server's limit of 5 seconds" in verdict
        assert time.monotonic() - started < 9
        _, (fine,) = post_upload(url, "fine.mp4", face_video.read_bytes() + b"\0")
        assert "confidence" in _verdict(run(url, "check_upload", [file_input(fine, "fine.mp4")], "next"))
    finally:
        stop(demo)


@pytest.mark.slow
def test_files_nothing_tracks_are_swept_at_start_and_at_stop(outside_connections, gradio_cache, predictor,
                                                             face_video):
    import os

    stale = gradio_cache / "tmpleftbyanearlierrun"
    stale.write_bytes(b"x" * 100)
    then = time.time() - 3600
    os.utime(stale, (then, then))
    demo = _serve(predictor)
    try:
        url = demo.local_url
        cut_off_upload(url, "cut.mp4", face_video.read_bytes())
        assert post_upload(url, "..", face_video.read_bytes())[0] == 400
        _, (path,) = post_upload(url, "kept.mp4", face_video.read_bytes())
        assert "confidence" in _verdict(run(url, "check_upload", [file_input(path, "kept.mp4")], "someone"))
        time.sleep(0.5)
        assert not stale.exists()  # swept at start: an hour old, held by nothing
        assert _cached_files(gradio_cache)  # this run's upload, results and partial uploads, for now
    finally:
        stop(demo)
    assert _cached_files(gradio_cache) == []


@pytest.mark.slow
@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_the_server_stopped_by_a_signal_deletes_its_files(tmp_path, checkpoint, face_video, signum):
    """A service manager stops it with SIGTERM; a shell that started it in the background makes it ignore
    SIGINT. Either way it closes, and its upload cache and job folders are emptied."""
    import os
    import signal
    import subprocess

    cache, scratch = tmp_path / "cache", tmp_path / "scratch"
    scratch.mkdir()
    port = _free_port()
    env = {**os.environ, "GRADIO_TEMP_DIR": str(cache), "TMPDIR": str(scratch), "PYTHONPATH": str(Path.cwd())}
    server = subprocess.Popen([sys.executable, "-m", "dflib", "app", "--checkpoint", str(checkpoint), "--device", "cpu",
                               "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 120
        while get(url) != 200:
            assert server.poll() is None and time.monotonic() < deadline, server.stdout.read().decode()
            time.sleep(0.5)
        _, (path,) = post_upload(url, "clip.mp4", face_video.read_bytes())
        assert "confidence" in _verdict(run(url, "check_upload", [file_input(path, "clip.mp4")], "someone"))
        assert _cached_files(cache) and list(scratch.glob("dflib-app-*"))  # its job folders
        server.send_signal(getattr(signal, signum))
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
    assert _cached_files(cache) == [] and list(scratch.glob("dflib-app-*")) == []
