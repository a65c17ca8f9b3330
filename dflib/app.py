"""``dflib app``: a web page where a person uploads a video and sees FAKE or REAL, and why (Gradio).

The work is ``dflib.explanation.explain`` on one ``Predictor`` loaded at start; this module lays
out the page and guards the server: an upload size limit, one video analysed at a time by default
with the others queued (the page shows their place), a time limit per check, uploads deleted as
soon as no check needs them (``dflib.appcache``), only the Host names it was started for, and
127.0.0.1 unless another address or a share link is asked for. Gradio's telemetry and update check
are switched off before it is imported: the page works offline and reports to no one.

Annotations are evaluated (no ``from __future__ import annotations``): Gradio finds the
``gr.Request`` parameter of a handler by its annotation, which must be the class itself.
"""
import atexit
import copy
import html
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

from dflib.appcache import UploadCache
from dflib.config import AppConfig
from dflib.prediction import ERROR, FAKE, NO_FACE, Prediction, Predictor

INSTALL_HINT = "pip install 'dflib[app]'"
TITLE = "dflib: is this video FAKE or REAL?"
EXAMPLES_SHOWN = 8
# Gradio's own copies of results (images, annotated clip) and of uploads never checked: every
# 10 minutes, those older than 30 minutes are deleted (and all of them when the server stops).
CACHE_CLEANUP = (600, 1800)
CAVEAT = ("A score says how this model sees this video, not whether it is fake: a detector trained on a few "
          "sources misses fakes made another way.")
OUTPUT_FILES = ("timeline", "full_frame", "grid", "animation")  # Explanation.files keys, in page order


def import_gradio():
    """Gradio with its telemetry off, or an ImportError that says how to install it."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    # A cache folder of dflib's own, so that sweeping it never touches another Gradio app's files.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(Path(tempfile.gettempdir()) / "dflib-app"))
    try:
        import gradio
    except ImportError as error:
        raise ImportError(f"the web app needs Gradio, which is not installed: {INSTALL_HINT}") from error
    if int(gradio.__version__.split(".")[0]) < 6:
        raise ImportError(f"the web app needs Gradio 6 or newer, found {gradio.__version__}: {INSTALL_HINT}")
    return gradio


def verdict_html(prediction: Prediction, note: str = "") -> str:
    """The verdict in large letters and, below it, what it rests on or, for NO_FACE/ERROR, why there is none."""
    from dflib.notebook import VERDICT_COLORS

    p = prediction
    if p.label == NO_FACE:
        headline = "NO_FACE: no verdict"
        lines = [f"No usable face was found, so there is nothing to judge ({p.reason}). The detector needs a face "
                 "that is visible, large enough and not turned far away, in as many sampled frames as the "
                 "model's training videos had."]
    elif p.label == ERROR:
        headline = "ERROR: this file could not be checked"
        lines = [f"It could not be checked: {p.reason}. A complete video file (MP4, MOV, AVI, MKV or WebM) of "
                 "ordinary size can be."]
    else:
        headline = f"{p.label}: {100 * p.confidence:.1f}% confidence"
        lines = [f"P(FAKE) = {p.p_fake:.3f}; FAKE at {p.threshold:g} or above.",
                 f"{p.faces} face track(s); the face was found in {p.frames_used} of {p.frames_sampled} sampled frames."]
        if p.faces > 1:
            lines.append(f"The heatmaps show track {p.track}, the most suspicious; the table has every track.")
        if note:
            lines.append(f"No heatmaps: {note}.")
    color = VERDICT_COLORS.get(p.label, "#616161")
    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    return (f'<div class="dflib-verdict"><div style="font-size:2em;font-weight:bold;color:{color}">'
            f'{html.escape(headline)}</div><p><b>{html.escape(Path(p.video).name)}</b></p>{body}</div>')


def track_rows(prediction: Prediction) -> list[list]:
    """One row per face track: its number, score and verdict, and how many face frames it had."""
    return [[track.track, round(track.p_fake, 4), FAKE if track.p_fake >= prediction.threshold else "REAL",
             track.frames_used] for track in prediction.tracks]


def example_videos(cfg: AppConfig, ckpt: dict) -> dict[str, Path]:
    """Name -> path of the videos offered as examples: ``cfg.examples``, or else the checkpoint's
    held-out test videos that are still where preprocessing found them."""
    from dflib.labels import find_videos

    if cfg.examples:
        folder = Path(cfg.examples).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"--examples {folder}: no such folder")
        names = find_videos(folder)
    else:
        folder = Path((ckpt.get("preprocess") or {}).get("videos") or "")
        names = sorted(name for name, split in (ckpt.get("splits") or {}).items() if split == "test")
        if not folder.parts:
            return {}
    found = {name: folder / name for name in names if (folder / name).is_file()}
    return dict(list(found.items())[:EXAMPLES_SHOWN])


def _replica(predictor: Predictor) -> Predictor:
    """A Predictor for another job running at the same time: its own copy of the model (Grad-CAM
    hooks into it) and its own face detector (OpenCV's network is not thread-safe); the checkpoint
    dict and an onnxruntime session (thread-safe) are shared."""
    from dflib.faces import create_detector

    pre = predictor.preprocess
    memo = {id(predictor.ckpt): predictor.ckpt,
            id(predictor.detector): create_detector(pre.detector, pre.detect_long_side, pre.min_face_score)}
    if predictor.model is None:
        memo[id(predictor._scores)] = predictor._scores
    return copy.deepcopy(predictor, memo)


def build_app(predictor: Predictor, cfg: AppConfig):
    """The page, as a ``gradio.Blocks`` (not started)."""
    gr = import_gradio()
    from dflib.explanation import Explanation, explain

    if cfg.concurrency < 1 or cfg.queue_size < 1 or cfg.max_file_size_mb <= 0:
        raise ValueError(f"--concurrency and --queue-size must be at least 1 and --max-file-size-mb above 0, got "
                         f"{cfg.concurrency}, {cfg.queue_size} and {cfg.max_file_size_mb:g}")
    if cfg.time_limit_s < 0:
        raise ValueError(f"--time-limit-s must be 0 (no limit) or more, got {cfg.time_limit_s:g}")
    from dflib.notebook import describe_checkpoint

    examples = example_videos(cfg, predictor.ckpt)
    free = queue.SimpleQueue()  # one Predictor per job that may run at once
    for worker in [predictor] + [_replica(predictor) for _ in range(cfg.concurrency - 1)]:
        free.put(worker)
    jobs_root = Path(tempfile.mkdtemp(prefix="dflib-app-"))
    atexit.register(shutil.rmtree, jobs_root, True)

    def analyse(video: str, progress, done=None):
        """The page's outputs for one video; ``done`` runs once the check has let go of the video."""
        # A job's files are copied to Gradio's cache once it returns; the page's follow-up step
        # deletes them, and this sweep catches jobs started without the page (Gradio's API).
        _sweep(jobs_root, CACHE_CLEANUP[1])
        job = Path(tempfile.mkdtemp(prefix="job-", dir=jobs_root))
        progress(0.1, desc="Reading the video, finding faces, scoring them and computing the heatmaps")
        try:
            explanation = _within_time_limit(lambda worker: explain(video, worker, out_dir=job), free,
                                             cfg.time_limit_s, done)
        except Exception as error:  # noqa: BLE001 - a bad upload must give a message, never stop the server
            explanation = Explanation(Prediction(video=str(video), label=ERROR, threshold=predictor.threshold,
                                                 reason=f"unexpected error: {type(error).__name__}: {error}"))
        if explanation is None:
            explanation = Explanation(Prediction(
                video=str(video), label=ERROR, threshold=predictor.threshold,
                reason=f"the check took longer than this server's limit of {cfg.time_limit_s:g} seconds"))
        prediction = explanation.prediction
        files = [str(explanation.files[name]) if name in explanation.files else None for name in OUTPUT_FILES]
        tracks = gr.update(value=track_rows(prediction), visible=prediction.faces > 1)
        return (verdict_html(prediction, explanation.note), tracks, *files, str(job))

    def claim_upload(video: str | None, request: gr.Request):
        cache.claim(video, request.session_hash)

    def check_upload(video: str | None, request: gr.Request, progress=gr.Progress()):
        if not video:
            return ("<p>Upload a video first.</p>", gr.update(visible=False), None, None, None, None, None)
        cache.start_check(video)
        return analyse(video, progress, done=lambda in_job: cache.end_check(video, request.session_hash, in_job))

    def check_example(name: str, progress=gr.Progress()):
        return analyse(str(examples[name]), progress)  # read where it lies, never deleted

    def end_session(request: gr.Request):
        cache.release_session(request.session_hash)

    def finish(job: str | None):
        """Once the results are on their way to the page: the job's files go, and the deleted upload
        leaves the upload box."""
        if job:
            shutil.rmtree(job, ignore_errors=True)
        return None

    with gr.Blocks(title="dflib", analytics_enabled=False, delete_cache=CACHE_CLEANUP) as demo:
        cache = UploadCache(demo.GRADIO_CACHE, uploads=lambda: list(demo.upload_file_set),
                            queued=lambda: _queued_uploads(demo))
        model = describe_checkpoint(predictor).replace("\n", "; ")
        gr.Markdown(f"# {TITLE}\n{CAVEAT}\n\n{model[0].upper()}{model[1:]}")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.Video(label="Upload a video: it is checked at once", sources=["upload"],
                                  elem_id="upload")
                gr.Markdown(f"Up to {cfg.max_file_size_mb:g} MB. {_queue_text(cfg)} Your upload is deleted from "
                            "the server as soon as it has been checked.")
                if examples:
                    choice = gr.Dropdown(list(examples), value=next(iter(examples)), label="Or pick an example",
                                         elem_id="example")
                    example_button = gr.Button("Check this example", elem_id="check-example")
            with gr.Column(scale=2):
                verdict = gr.HTML("<p>Upload a video to see the verdict.</p>", elem_id="verdict")
                tracks = gr.Dataframe(headers=["track", "P(FAKE)", "verdict", "face frames"], visible=False,
                                      interactive=False, label="Every face track", elem_id="tracks")
                timeline = gr.Image(label="Running score: P(FAKE) after the frames up to each point",
                                    interactive=False, elem_id="timeline")
        with gr.Row():
            full_frame = gr.Image(label="The frame that raises P(FAKE) most, with the heatmap over the face",
                                  interactive=False, elem_id="full-frame")
            clip = gr.Video(label="Annotated clip", interactive=False, autoplay=True, loop=True, elem_id="annotated")
        grid = gr.Image(label="Grad-CAM of the decision on every frame the model saw, ranked by influence "
                              "(P(FAKE) minus P(FAKE) without the frame; one colour scale for the whole video)",
                        interactive=False, elem_id="grid")
        job = gr.State()
        outputs = [verdict, tracks, timeline, full_frame, grid, clip, job]
        # Claimed at once, outside the queue, by this session: its check then finds the file even
        # when another check of the same video ends first.
        upload.upload(claim_upload, upload, None, queue=False, api_name="claim") \
            .then(check_upload, upload, outputs, concurrency_id="analyse", show_progress="full") \
            .then(finish, job, upload, queue=False)
        if examples:
            example_button.click(check_example, choice, outputs, concurrency_id="analyse", show_progress="full") \
                .then(finish, job, None, queue=False)
        demo.unload(end_session)
    demo.queue(default_concurrency_limit=cfg.concurrency, max_size=cfg.queue_size)
    demo.upload_cache, demo.jobs_root = cache, jobs_root
    return demo


def _within_time_limit(work, free: queue.SimpleQueue, limit_s: float, done=None):
    """``work(predictor)`` on a free Predictor in its own thread: its result (or its exception, raised
    here), or None once it has run ``limit_s``. A thread cannot be stopped: one that overran keeps its
    Predictor until it ends, and the next check waits for one, so no more checks run at once than
    were set. ``done(in_job)`` runs once the work has ended: here (``in_job`` True) when in time,
    else in that thread when it ends, after the job has returned."""
    outcome = []
    state = threading.Lock()
    abandoned = finished = False
    worker = free.get()

    def run():
        nonlocal finished
        try:
            outcome.append(work(worker))
        except Exception as error:  # noqa: BLE001 - raised in the waiting thread
            outcome.append(error)
        finally:
            free.put(worker)
            with state:
                finished = True
                late = abandoned
            if late and done is not None:
                done(False)

    thread = threading.Thread(target=run, name="dflib-app-check", daemon=True)
    thread.start()
    thread.join(limit_s or None)
    with state:
        abandoned = not finished
    if abandoned:
        return None
    if done is not None:
        done(True)
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    return outcome[0]


def _queued_uploads(demo) -> list[str]:
    """The file paths that jobs waiting in Gradio's queue, or taken from it, were given (Gradio 6's
    queue, read as it is)."""
    jobs = demo._queue
    events = [event for waiting in list(jobs.event_queue_per_concurrency_id.values()) for event in list(waiting.queue)]
    events += [event for running in list(jobs.active_jobs) if running for event in running]
    return [path for event in events if event.data is not None for path in _paths(event.data.data)]


def _paths(payload) -> list[str]:
    """Every ``"path"`` of the file payloads (dicts) in a job's inputs."""
    if isinstance(payload, dict):
        own = [payload["path"]] if isinstance(payload.get("path"), str) else []
        return own + [path for value in payload.values() for path in _paths(value)]
    if isinstance(payload, (list, tuple)):
        return [path for value in payload for path in _paths(value)]
    return []


def _sweep(root: Path, age_s: float) -> None:
    """Delete job folders older than ``age_s``."""
    cutoff = time.time() - age_s
    for folder in root.iterdir():
        if folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)


def _queue_text(cfg: AppConfig) -> str:
    at_once = "One video is" if cfg.concurrency == 1 else f"{cfg.concurrency} videos are"
    return f"{at_once} checked at a time; others wait in a queue (up to {cfg.queue_size}), which shows their place."


def launch(predictor: Predictor, cfg: AppConfig, inline: bool | None = None):
    """Build and start the page on ``cfg.host``:``cfg.port`` in the background; returns the running
    Blocks (``.local_url``, ``.share_url``, ``.block_thread()``, ``.close()``)."""
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    demo = build_app(predictor, cfg)
    guard = Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(cfg))
    demo.launch(server_name=cfg.host, server_port=cfg.port or None, share=cfg.share, inline=inline,
                max_file_size=int(cfg.max_file_size_mb * 2**20), prevent_thread_lock=True, show_error=True,
                ssr_mode=False, pwa=False, mcp_server=False, enable_monitoring=False, quiet=True,
                app_kwargs={"middleware": [guard]})
    # Swept at once (files an earlier run left), then while it runs; emptied of this run's files
    # when it stops (``stop``), or at exit: a closing server waits only 5 s for open connections,
    # so Gradio's own clean-up at shutdown may never run.
    demo.upload_cache.start_sweeping(CACHE_CLEANUP[1])
    atexit.register(demo.upload_cache.stop)
    return demo


def stop(demo) -> None:
    """Close a server started by ``launch`` and delete every file it left: in the upload cache, and
    the job folders that checks sent through Gradio's API (not the page) leave for the sweep."""
    demo.close()
    demo.upload_cache.stop()
    shutil.rmtree(demo.jobs_root, ignore_errors=True)


def allowed_hosts(cfg: AppConfig) -> list[str]:
    """The Host header values the server answers: the names it was started for. A web page from
    elsewhere whose name is made to resolve to 127.0.0.1 (DNS rebinding) sends its own name, and is
    refused."""
    names = [name.strip() for name in cfg.allowed_hosts.split(",") if name.strip()]
    if cfg.host in ("0.0.0.0", "::", "") and not names:
        return ["*"]  # every address of this machine: its names cannot be known here
    names += [cfg.host, "localhost", "127.0.0.1", "::1", "[::1]"]
    if cfg.share:
        names.append("*.gradio.live")  # Gradio's share links
    return list(dict.fromkeys(names))


def notebook_app(predictor: Predictor, cfg: AppConfig | None = None, start: bool | str = "auto"):
    """The page inline in a notebook cell; ``start="auto"`` starts it only on Colab, where a person
    is looking (a headless run must not wait on a server). Returns the running Blocks, or None."""
    from dflib.models import _in_colab

    if start == "auto":
        start = _in_colab()
    if not start:
        print("The web app is not started: set LAUNCH_APP = True above to start it here (needs "
              f"{INSTALL_HINT}), or run `dflib app --checkpoint CHECKPOINT` in a terminal.")
        return None
    # Port 0: the first free from 7860. Colab shows the page through its own proxy, whose host name
    # the page is then asked for: there any Host is accepted (the server is in Colab's machine).
    return launch(predictor, cfg or AppConfig(port=0, allowed_hosts="*" if _in_colab() else ""), inline=True)


def app_cli(args, cfg: AppConfig) -> int:
    """``dflib app``: serve the page until Ctrl+C."""
    import_gradio()  # before loading a model, so a missing install is the first thing said
    predictor = Predictor(cfg.checkpoint, threshold=cfg.threshold, device=cfg.device, all_tracks=cfg.all_tracks,
                          backend=cfg.backend)
    # Stopped by SIGTERM (a service manager) or by SIGINT even when started in the background (a shell
    # then ignores SIGINT for it), the server still closes and its files are deleted.
    previous = {signum: signal.signal(signum, signal.default_int_handler) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        demo = launch(predictor, cfg)
        print(f"dflib app: open {demo.local_url} in a browser; Ctrl+C stops it")
        if cfg.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"dflib app: listening on {cfg.host}: anyone who can reach this machine can use the page")
        if demo.share_url:
            print(f"dflib app: public link (valid while this runs): {demo.share_url}")
        demo.block_thread()  # until Ctrl+C (or SIGTERM), which closes the server
        stop(demo)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
