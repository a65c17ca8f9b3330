"""The web app's upload cache: which uploads a job still needs, and deleting the rest.

Gradio stores an upload under a hash of its content, so the same video uploaded twice, by one
person or two, is one file that several jobs need. A file here is deleted only when no session
holds a claim on it, no running job uses it and no queued job names it; a session releases only
its own claims. Only uploads (what Gradio's upload route recorded) are deleted when their jobs
are done, never the page's results, which the browser fetches afterwards. Every other file that
nothing holds (results, the ``tmp*`` file an upload cut off mid-way leaves, files of an earlier
run) is swept once it is old enough that no page or upload can still want it, and every file of
this run when the server stops.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

# An upload reaches its job a moment after it is stored (the page's claim, or an API client's
# queue request, follows the upload): younger unclaimed uploads are left alone.
UPLOAD_GRACE_S = 30.0
# How often the cache is swept while the app runs.
SWEEP_EVERY_S = 10.0


class UploadCache:
    """Claims (by session) and uses (by running job) of the uploads in Gradio's cache folder.

    ``uploads`` gives the paths Gradio's upload route stored and ``queued`` the upload paths that
    queued or running jobs name; both read the live server, so the cache is judged as it is now.
    The folder is the app's own (``dflib.app`` sets ``GRADIO_TEMP_DIR``): sweeping it touches no
    other program's files.
    """

    def __init__(self, cache: str | Path, uploads: Callable[[], Iterable[str]],
                 queued: Callable[[], Iterable[str]]):
        self.cache = Path(cache).resolve()
        self._uploads, self._queued = uploads, queued
        self.claims: dict[str, Counter[str]] = {}  # path -> session -> claims
        self.in_use: Counter[str] = Counter()  # path -> running checks
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    def claim(self, path: str | None, session: str) -> None:
        if path:
            with self.lock:
                self.claims.setdefault(path, Counter())[session] += 1

    def start_check(self, path: str) -> None:
        """A check begins reading ``path``: nothing deletes it until ``end_check``."""
        with self.lock:
            self.in_use[path] += 1

    def end_check(self, path: str, session: str, in_job: bool = True) -> None:
        """The check that ``session`` started on ``path`` is done: drop one of this session's claims
        (another session's claims stay), then delete the upload if nothing needs it any more.
        ``in_job``: called from within the queued job, which the queue still lists as running."""
        with self.lock:
            self.in_use[path] -= 1
            if not self.in_use[path]:
                del self.in_use[path]
            sessions = self.claims.get(path)
            if sessions and sessions[session] > 0:
                sessions[session] -= 1
                if not +sessions:
                    del self.claims[path]
        self.collect([path], ending=path if in_job else None)

    def release_session(self, session: str) -> None:
        """A session that ended (tab closed) holds nothing: its claims go, and so do the uploads
        only it held."""
        with self.lock:
            dropped = [path for path, sessions in self.claims.items() if sessions.pop(session, 0)]
            for path in dropped:
                if not +self.claims[path]:
                    del self.claims[path]
        self.collect(dropped)

    def held(self, ending: str | None = None) -> set[str]:
        """Resolved paths that a session, a running check or a queued job still needs. The queue
        lists running jobs too: those are the checks counted in ``in_use``, and ``ending``, a check
        that has just let go of its file but whose job has not yet returned."""
        with self.lock:
            paths = {_key(path) for path in [*self.claims, *self.in_use]}
            running = Counter({_key(path): count for path, count in self.in_use.items()})
        if ending:
            running[_key(ending)] += 1
        waiting = Counter(_key(path) for path in self._queued()) - running
        return paths | set(waiting)

    def collect(self, paths: Iterable[str], min_age_s: float = 0.0, ending: str | None = None) -> None:
        """Delete those of ``paths`` that are uploads in the cache, nothing holds (see ``held``), and
        are older than ``min_age_s``."""
        uploads = {_key(path) for path in self._uploads()}
        held = self.held(ending)
        cutoff = time.time() - min_age_s
        for path in {_key(path) for path in paths}:
            if path in uploads and path not in held:
                self._delete(Path(path), cutoff)

    def sweep(self, age_s: float, everything: bool = False) -> None:
        """Delete the uploads nothing holds (older than ``UPLOAD_GRACE_S``) and every other file
        nothing holds that is older than ``age_s`` (results the browser fetched long ago, files that
        no one tracks, such as those cut-off uploads leave, and those of earlier runs); with
        ``everything`` (the server has stopped) also every file this run wrote, and empty folders."""
        if not self.cache.is_dir():
            return
        self.collect(self._uploads(), UPLOAD_GRACE_S)
        held = self.held()
        cutoff = time.time() - age_s
        # os.walk skips what vanishes while it looks (Gradio deletes its own files at the same time).
        for root, folders, files in os.walk(self.cache, topdown=False):
            for name in files:
                path = Path(root, name)
                if str(path) not in held and not path.is_symlink():
                    self._delete(path, float("inf") if everything else cutoff)
            for name in folders if everything else ():
                with contextlib.suppress(OSError):
                    Path(root, name).rmdir()  # only when empty

    def _delete(self, path: Path, cutoff: float) -> None:
        """Delete ``path`` if it was last written before ``cutoff``, and its hash folder once empty;
        never anything outside the cache."""
        try:
            if not path.resolve().is_relative_to(self.cache) or path.stat().st_mtime >= cutoff:
                return
            path.unlink()
            if path.parent != self.cache and not any(path.parent.iterdir()):
                path.parent.rmdir()
        except OSError:
            pass  # gone already, or written to again: left for the next sweep

    def start_sweeping(self, untracked_age_s: float) -> None:
        """Sweep now and then every ``SWEEP_EVERY_S`` in the background, until ``stop``."""
        def run():
            while True:
                self.sweep(untracked_age_s)
                if self._stop.wait(SWEEP_EVERY_S):
                    return

        self._sweeper = threading.Thread(target=run, name="dflib-app-sweep", daemon=True)
        self._sweeper.start()

    def stop(self) -> None:
        """Stop sweeping and delete every file this run left that nothing holds (the server is down)."""
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join()
        self.sweep(0.0, everything=True)



def _key(path: str) -> str:
    """One spelling per file: Gradio's paths and ours may differ by symlinks (/tmp on macOS)."""
    return str(Path(path).resolve())
