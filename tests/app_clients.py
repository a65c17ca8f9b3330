"""Bare HTTP clients of ``dflib app`` for the tests: they send exactly what they are given, as an
attacker would, where a client library would upload or tidy it first."""
from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request

BOUNDARY = "dflibtestboundary"


def _multipart(name: str, content: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            "Content-Type: video/mp4\r\n\r\n").encode() + content + f"\r\n--{BOUNDARY}--\r\n".encode()


def post_upload(url: str, name: str, content: bytes) -> tuple[int, list[str]]:
    """Upload one file as the page does: (HTTP status, the paths Gradio stored it under)."""
    request = urllib.request.Request(f"{url}gradio_api/upload", data=_multipart(name, content), method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, []


def cut_off_upload(url: str, name: str, content: bytes) -> None:
    """Start an upload that says it is longer than what is sent, then hang up."""
    body = _multipart(name, content)
    address = urllib.parse.urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall((f"POST /gradio_api/upload HTTP/1.1\r\nHost: {address.netloc}\r\n"
                            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                            f"Content-Length: {len(body) + 100_000}\r\n\r\n").encode() + body[:-10])


def get(url: str, host: str | None = None) -> int:
    """The status of a GET, with another Host header if given; 0 when nothing answers."""
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except urllib.error.URLError:
        return 0


def file_input(path: str, name: str | None = None) -> dict:
    """A file input naming a path already on the server, as the page sends it after an upload."""
    return {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def join(url: str, api_name: str, data: list, session: str) -> dict:
    """Put one job in the queue under ``session``; Gradio's answer (``event_id``, or why not)."""
    with urllib.request.urlopen(f"{url}config", timeout=30) as response:
        config = json.load(response)
    fn_index = next(dep["id"] for dep in config["dependencies"] if dep.get("api_name") == api_name)
    body = json.dumps({"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None,
                       "trigger_id": None}).encode()
    request = urllib.request.Request(f"{url}gradio_api/queue/join", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        return {"status": error.code, "detail": error.read().decode(errors="replace")}


def results(url: str, session: str, timeout: float = 300) -> list[dict]:
    """The completed messages of ``session``'s jobs, read from the event stream until it ends."""
    done = []
    with urllib.request.urlopen(f"{url}gradio_api/queue/data?session_hash={session}", timeout=timeout) as stream:
        for line in stream:
            if line.startswith(b"data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    done.append(message)
                if message.get("msg") == "close_stream":
                    break
    return done


def run(url: str, api_name: str, data: list, session: str) -> dict:
    """One job, to its end: the completed message (``output``, ``success``)."""
    joined = join(url, api_name, data, session)
    assert "event_id" in joined, joined
    return results(url, session)[0]
