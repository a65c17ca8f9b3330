"""The web app's upload cache: an upload goes once no check needs it, and only then; a session
cannot delete what another holds; files nothing tracks are swept."""
import os
import time

import pytest

from dflib.appcache import UPLOAD_GRACE_S, UploadCache


@pytest.fixture
def cache(tmp_path):
    """A cache folder with one upload in its hash folder and one result image; nothing queued."""
    folder = tmp_path / "cache"
    upload, result = folder / "abc123" / "clip.mp4", folder / "def456" / "cam_grid.png"
    for path in (upload, result):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
    queued: list[str] = []
    uploads = UploadCache(folder, uploads=lambda: [str(upload)], queued=lambda: list(queued))
    uploads.upload, uploads.result, uploads.queued_paths = str(upload), str(result), queued
    return uploads


def _check(cache, path, session):
    """One check as the app runs it: Gradio's queue lists the job until it has returned."""
    cache.queued_paths.append(path)
    cache.start_check(path)
    cache.end_check(path, session)
    cache.queued_paths.remove(path)


def test_the_same_upload_claimed_by_two_sessions_goes_after_the_second_check(cache):
    cache.claim(cache.upload, "alice")
    cache.claim(cache.upload, "bob")
    _check(cache, cache.upload, "alice")
    assert os.path.exists(cache.upload)
    _check(cache, cache.upload, "bob")
    assert not os.path.exists(cache.upload) and not os.path.exists(os.path.dirname(cache.upload))
    assert not cache.claims and not cache.in_use and cache.cache.is_dir()


def test_a_check_never_deletes_what_another_session_or_job_holds(cache):
    cache.claim(cache.upload, "victim")
    _check(cache, cache.upload, "attacker")  # the attacker's check, on the victim's upload
    assert os.path.exists(cache.upload) and cache.claims[cache.upload]["victim"] == 1
    cache.start_check(cache.upload)  # the victim's check runs ...
    cache.claim(cache.upload, "attacker")
    _check(cache, cache.upload, "attacker")  # ... while the attacker's, claimed too, ends
    assert os.path.exists(cache.upload)
    cache.end_check(cache.upload, "victim")
    assert not os.path.exists(cache.upload)


def test_a_queued_job_keeps_its_upload(cache):
    cache.queued_paths.append(cache.upload)  # waiting for its turn, unclaimed (a client of the API)
    _check(cache, cache.upload, "alice")
    assert os.path.exists(cache.upload)
    cache.queued_paths.clear()
    _check(cache, cache.upload, "bob")
    assert not os.path.exists(cache.upload)


def test_a_check_that_overran_does_not_count_as_its_finished_job(cache):
    cache.start_check(cache.upload)  # its job gave up waiting and has left the queue ...
    cache.queued_paths.append(cache.upload)  # ... and another job for the same file waits
    cache.end_check(cache.upload, "alice", in_job=False)
    assert os.path.exists(cache.upload)


def test_a_check_never_deletes_a_result_or_a_file_outside_the_cache(cache, tmp_path):
    mine = tmp_path / "mine.mp4"
    mine.write_bytes(b"x")
    for path in (cache.result, str(mine)):
        cache.claim(path, "attacker")
        _check(cache, path, "attacker")
        assert os.path.exists(path)


def test_a_session_that_ends_lets_go_of_its_uploads(cache):
    cache.claim(cache.upload, "gone")
    cache.claim(cache.upload, "gone")
    cache.release_session("gone")
    assert not os.path.exists(cache.upload) and not cache.claims


def _age(path, seconds):
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_the_sweep_deletes_old_files_nothing_holds_and_stopping_deletes_the_rest(cache, tmp_path):
    cut_off = cache.cache / "tmpa1b2c3"  # an upload cut off mid-way: nothing tracks it
    cut_off.write_bytes(b"partial")
    elsewhere = tmp_path / "elsewhere.mp4"
    elsewhere.write_bytes(b"x")
    (cache.cache / "link.mp4").symlink_to(elsewhere)
    cache.sweep(age_s=60)
    assert cut_off.exists() and os.path.exists(cache.upload)  # too young to judge
    _age(cut_off, 61)
    _age(cache.upload, UPLOAD_GRACE_S + 1)
    cache.claim(cache.upload, "alice")
    cache.sweep(age_s=60)
    assert not cut_off.exists() and os.path.exists(cache.upload)  # claimed: kept whatever its age
    cache.release_session("alice")
    assert not os.path.exists(cache.upload)
    assert os.path.exists(cache.result)  # the browser may still fetch it
    cache.stop()
    assert [path.name for path in cache.cache.rglob("*")] == ["link.mp4"] and elsewhere.exists()
