"""``dflib app`` under a bounded load: about 30 checks from several client threads at once.

The server runs in this process on 127.0.0.1 with a tiny model and tiny clips, so the run takes a
minute or two. The mix: ordinary clips, one clip many times, a truncated file, a text file named
.mp4, an upload over the size limit, a video of huge frames, a burst of more jobs than the queue
holds, and a client that leaves before its result. It prints jobs per minute, the longest wait and
peak memory; the README quotes them.
"""
from __future__ import annotations

import html
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app_clients import file_input, get, join, post_upload, results, run
from dflib.config import AppConfig
from dflib.prediction import Predictor
from tiny_checkpoint import tiny_checkpoint

QUEUE_SIZE = 6
LIMIT_MB = 2.0
BURST = 12  # jobs sent at once, more than the queue holds
# Memory after the run may exceed memory after the first check by this much (allocator caches,
# Gradio's per-session state; +76 to +117 MB measured): a leak of 10 MB per check would exceed it.
MEMORY_MARGIN_MB = 300


def _rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


class _Monitor:
    """Asks the server for its config every 0.2 s and samples this process's memory meanwhile."""

    def __init__(self, url: str):
        self.url, self.failures, self.slowest, self.peak_mb = url, [], 0.0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.2):
            started = time.monotonic()
            status = get(f"{self.url}config")
            self.slowest = max(self.slowest, time.monotonic() - started)
            if status != 200:
                self.failures.append(status)
            self.peak_mb = max(self.peak_mb, _rss_mb())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, face_video, two_faces_video, noise_video, huge_frame_video, sample_data_or_none):
    """name -> bytes of every file sent; the names are what the page shows."""
    folder = tmp_path_factory.mktemp("load")
    files = {"face.mp4": face_video, "two_faces.mp4": two_faces_video, "noise.mp4": noise_video,
             "huge_frames.mp4": huge_frame_video}
    if sample_data_or_none is not None:
        sample = sorted((sample_data_or_none / "videos").glob("*.mp4"), key=lambda path: path.stat().st_size)[0]
        files["sample.mp4"] = sample
    content = {name: path.read_bytes() for name, path in files.items()}
    content["truncated.mp4"] = content["face.mp4"][: len(content["face.mp4"]) // 2]
    content["notes.mp4"] = b"these are my notes, not a video\n" * 10
    for name, data in content.items():
        (folder / name).write_bytes(data)
    return folder, content


@pytest.mark.slow
def test_the_app_under_load(tmp_path, monkeypatch, inputs):
    pytest.importorskip("gradio", reason="the web app needs dflib[app]")
    from dflib.app import launch, stop, verdict_html

    folder, content = inputs
    cache = tmp_path / "gradio_cache"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    predictor = Predictor(tiny_checkpoint(tmp_path / "tiny.pt", seed=3), device="cpu")
    # What a direct call says about each file: the page must say the same.
    expected = {name: verdict_html(predictor(folder / name)) for name in content}
    assert expected["face.mp4"] != expected["noise.mp4"]
    assert "frames of 8192x8192 pixels, more than the limit" in html.unescape(expected["huge_frames.mp4"])
    demo = launch(predictor, AppConfig(port=0, max_file_size_mb=LIMIT_MB, queue_size=QUEUE_SIZE))
    url = demo.local_url
    waits, shown, refusals, lock = [], [], [], threading.Lock()

    def check(name: str, session: str, claim: bool = True) -> None:
        """One person: upload, claim as the page does (or not, as an API client may), check, wait."""
        started = time.monotonic()
        status, paths = post_upload(url, name, content[name])
        assert status == 200, (name, status)
        if claim:
            assert run(url, "claim", [file_input(paths[0])], session)["success"]
        while "event_id" not in (joined := join(url, "check_upload", [file_input(paths[0], name)], session)):
            with lock:
                refusals.append(joined)  # the queue is full: the person tries again a moment later
            time.sleep(1)
        (message,) = results(url, session)
        with lock:
            waits.append(time.monotonic() - started)
            shown.append((name, message))

    def burst() -> None:
        """More jobs at once than the queue holds, from one client that claims nothing."""
        _, (path,) = post_upload(url, "face.mp4", content["face.mp4"])
        answers = [join(url, "check_upload", [file_input(path, "face.mp4")], f"burst-{i}") for i in range(BURST)]
        with lock:
            refusals.extend(answer for answer in answers if "event_id" not in answer)
        for i, answer in enumerate(answers):
            if "event_id" in answer:
                (message,) = results(url, f"burst-{i}")
                with lock:
                    shown.append(("face.mp4", message))

    def leaver() -> None:
        """A client that puts in a check and goes before its result."""
        _, (path,) = post_upload(url, "two_faces.mp4", content["two_faces.mp4"])
        assert "event_id" in join(url, "check_upload", [file_input(path, "two_faces.mp4")], "leaver")

    check("face.mp4", "first")
    after_first_mb = _rss_mb()
    people = [("face.mp4", f"same-{i}") for i in range(6)]  # one clip many times
    people += [(name, f"{name}-{i}") for i in range(2) for name in content if name != "face.mp4"]
    started = time.monotonic()
    with _Monitor(url) as monitor, ThreadPoolExecutor(4) as pool:
        tasks = [pool.submit(check, name, session, claim=i % 3 != 0) for i, (name, session) in enumerate(people)]
        # Over the size limit: refused while it is sent, with Gradio's reason.
        tasks.append(pool.submit(lambda: refusals.append(post_upload(url, "big.mp4", b"\0" * int(3 * 2**20)))))
        tasks += [pool.submit(leaver), pool.submit(burst)]
        for task in tasks:
            task.result()
        # Every upload is gone once no check needs it (the leaver's too); the results stay for the page.
        deadline = time.monotonic() + 60
        while [path for path in list(demo.upload_file_set) if Path(path).exists()] and time.monotonic() < deadline:
            time.sleep(0.5)
        left = [path for path in list(demo.upload_file_set) if Path(path).exists()]
    elapsed = time.monotonic() - started
    after_run_mb = _rss_mb()
    stop(demo)

    jobs = len(shown) + 1
    print(f"\nload: {jobs} checks done, {len(refusals)} refused, in {elapsed:.0f} s: {60 * jobs / elapsed:.1f} "
          f"checks/min; longest wait {max(waits):.1f} s; memory after the first check {after_first_mb:.0f} MB, "
          f"peak {monitor.peak_mb:.0f} MB, after the run {after_run_mb:.0f} MB; slowest /config answer "
          f"{monitor.slowest:.2f} s")
    for name, message in shown:
        assert message["success"] and message["output"]["data"][0] == expected[name], (name, message)
    assert {name for name, _ in shown} == set(content)
    queue_full = [answer for answer in refusals if isinstance(answer, dict)]
    too_large = [answer for answer in refusals if isinstance(answer, tuple)]
    assert len(queue_full) >= BURST - QUEUE_SIZE - 1 and all("Queue is full" in str(answer) for answer in queue_full)
    assert too_large == [(413, [])]
    assert "not a readable video" in html.unescape(expected["notes.mp4"])
    assert monitor.failures == [] and monitor.slowest < 10
    assert left == []
    assert [path for path in cache.rglob("*") if path.is_file()] == [] and not demo.jobs_root.exists()
    assert after_run_mb - after_first_mb < MEMORY_MARGIN_MB
    shutil.rmtree(cache, ignore_errors=True)
