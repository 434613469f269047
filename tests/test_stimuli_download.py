"""Tests of speat_metric.stimuli.download through real HTTP: a local server on 127.0.0.1 serves generated audio."""

from __future__ import annotations

import doctest
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from http_servers import StaticFileServer

from speat_metric.stimuli import download
from speat_metric.stimuli.download import (
    DownloadError,
    Manifest,
    ManifestEntry,
    RetryPolicy,
    audio_validator,
    download_file,
    fetch_json,
    sniff_audio,
)
from speat_metric.stimuli.errors import RemoteFileMissingError

FAST = RetryPolicy(attempts=4, backoff=0.0, timeout=5.0)
PATH = "/soundtracks/english1.mp3"


@pytest.fixture
def recording(static_server: StaticFileServer, make_audio: Callable[..., bytes]) -> bytes:
    """A one-second MP3 served at PATH."""
    data = make_audio("mp3", seconds=1.0, frequency=300)
    static_server.add_file(PATH, data, "audio/mpeg")
    return data


def get(server: StaticFileServer, target: Path, path: str = PATH, **options) -> tuple[int, str]:
    return download_file(f"{server.url}{path}", target, retry=options.pop("retry", FAST), **options)


def test_a_download_returns_size_and_sha256_and_leaves_only_the_file(static_server, recording, tmp_path) -> None:
    target = tmp_path / "saa" / "english1.mp3"
    assert get(static_server, target) == (len(recording), hashlib.sha256(recording).hexdigest())
    assert target.read_bytes() == recording
    assert [p.name for p in target.parent.iterdir()] == ["english1.mp3"]
    request = static_server.requests[0]
    assert request.headers["user-agent"].startswith("speat/") and "range" not in request.headers


def test_dropped_connections_are_retried_and_resumed_with_range(static_server, recording, tmp_path) -> None:
    static_server.drop_connection(PATH, after_bytes=1000, times=2)
    target = tmp_path / "english1.mp3"
    size, sha256 = get(static_server, target)
    assert target.read_bytes() == recording and sha256 == hashlib.sha256(recording).hexdigest()
    assert [r.headers.get("range") for r in static_server.requests] == [None, "bytes=1000-", "bytes=2000-"]
    assert not list(tmp_path.glob(".*partial"))


def test_a_server_ignoring_range_restarts_the_file_cleanly(static_server, recording, tmp_path) -> None:
    static_server.drop_connection(PATH, after_bytes=700)
    static_server.ignore_range(PATH)
    get(static_server, tmp_path / "english1.mp3")
    assert (tmp_path / "english1.mp3").read_bytes() == recording
    assert static_server.count("GET", PATH) == 2


def test_a_partial_file_longer_than_the_remote_file_is_discarded(static_server, recording, tmp_path) -> None:
    (tmp_path / ".english1.mp3.partial").write_bytes(b"\x00" * (len(recording) + 10))
    get(static_server, tmp_path / "english1.mp3")  # the server answers 416 to the Range; the download starts over
    assert (tmp_path / "english1.mp3").read_bytes() == recording
    assert [r.headers.get("range") for r in static_server.requests] == [f"bytes={len(recording) + 10}-", None]


def test_transient_statuses_are_retried_honouring_retry_after(static_server, recording, tmp_path) -> None:
    static_server.fail(PATH, 503, times=2, headers={"Retry-After": "0"})
    get(static_server, tmp_path / "english1.mp3")
    assert static_server.count("GET", PATH) == 3


def test_a_404_raises_remote_file_missing_and_leaves_nothing(static_server, tmp_path) -> None:
    with pytest.raises(RemoteFileMissingError, match=r"/soundtracks/english9\.mp3: HTTP 404") as caught:
        get(static_server, tmp_path / "english9.mp3", "/soundtracks/english9.mp3")
    assert caught.value.reason == "HTTP 404" and not list(tmp_path.iterdir())


def test_an_html_page_served_as_200_is_refused_by_the_validator(static_server, tmp_path) -> None:
    static_server.add_file("/page.mp3", b"<!DOCTYPE html><html>moved</html>", "text/html")
    with pytest.raises(RemoteFileMissingError, match=r"page\.mp3: served an HTML page, not mp3 audio"):
        get(static_server, tmp_path / "page.mp3", "/page.mp3", validate=audio_validator("mp3"))
    assert not list(tmp_path.iterdir())


def test_an_interrupted_download_leaves_no_complete_looking_file(static_server, recording, tmp_path) -> None:
    static_server.drop_connection(PATH, after_bytes=500, times=FAST.attempts)
    target = tmp_path / "english1.mp3"
    with pytest.raises(DownloadError, match=r"could not download .*english1\.mp3 after 4 attempts \(last problem: .*"
                                            r"\); the partial file .*\.english1\.mp3\.partial is kept"):
        get(static_server, target)
    assert not target.exists()
    partial = tmp_path / ".english1.mp3.partial"
    assert partial.stat().st_size == 4 * 500
    static_server.clear_requests()
    get(static_server, target)  # the next run resumes where the last one stopped
    assert [r.headers.get("range") for r in static_server.requests] == ["bytes=2000-"]
    assert target.read_bytes() == recording and not partial.exists()


def test_other_http_errors_stop_at_once_with_the_status(static_server, recording, tmp_path) -> None:
    static_server.fail(PATH, 403)
    with pytest.raises(DownloadError, match=r"english1\.mp3: HTTP 403 Forbidden"):
        get(static_server, tmp_path / "english1.mp3")
    assert static_server.count("GET", PATH) == 1


def test_an_unreachable_server_gives_a_download_error(tmp_path: Path) -> None:
    with StaticFileServer() as server:
        url = f"{server.url}{PATH}"  # stopped on leaving the block: nothing listens there any more
    with pytest.raises(DownloadError, match=r"could not download .*english1\.mp3 after 2 attempts .*refused"):
        download_file(url, tmp_path / "x.mp3", retry=RetryPolicy(attempts=2, backoff=0, timeout=2))


def test_a_wrong_published_checksum_is_never_accepted(static_server, tmp_path: Path) -> None:
    static_server.add_file("/file.wav", b"RIFF....WAVE")
    with pytest.raises(DownloadError, match=r"does not match the published checksum md5:0+"):
        get(static_server, tmp_path / "file.wav", "/file.wav", expected_checksum="md5:" + "0" * 32)
    assert not list(tmp_path.iterdir())
    size, _ = get(static_server, tmp_path / "file.wav", "/file.wav",
                  expected_checksum=hashlib.md5(b"RIFF....WAVE").hexdigest())  # bare hex means md5
    assert size == 12


def test_fetch_json_parses_and_reports_bad_answers(static_server) -> None:
    static_server.add_json("/api/x", {"files": [1, 2]})
    static_server.add_file("/api/text", b"not json")
    assert fetch_json(f"{static_server.url}/api/x", retry=FAST) == {"files": [1, 2]}
    with pytest.raises(DownloadError, match=r"/api/text did not return JSON"):
        fetch_json(f"{static_server.url}/api/text", retry=FAST)
    with pytest.raises(RemoteFileMissingError, match=r"/api/none: HTTP 404"):
        fetch_json(f"{static_server.url}/api/none", retry=FAST)


def test_retry_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match=r"RetryPolicy.attempts must be at least 1, got 0"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match=r"RetryPolicy needs backoff >= 0, max_backoff >= 0 and timeout > 0"):
        RetryPolicy(timeout=0)


def test_sniff_audio_recognises_the_formats(make_audio: Callable[..., bytes]) -> None:
    assert [sniff_audio(make_audio(fmt)[:64]) for fmt in ("wav", "flac", "mp3")] == ["wav", "flac", "mp3"]
    assert sniff_audio(b"ID3\x04rest") == "mp3" and sniff_audio(b"OggS\x00") == "ogg"
    assert sniff_audio(b"<html>") is None and sniff_audio(b"") is None


def test_manifest_records_and_verifies_cached_files(tmp_path: Path) -> None:
    (tmp_path / "saa").mkdir()
    (tmp_path / "saa" / "x.mp3").write_bytes(b"abc")
    Manifest(tmp_path).record(ManifestEntry("saa/x.mp3", "http://h/x.mp3", 3, hashlib.sha256(b"abc").hexdigest()))
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk["version"] == 1 and on_disk["files"][0]["url"] == "http://h/x.mp3"
    assert Manifest(tmp_path).cached("saa/x.mp3").size == 3
    (tmp_path / "saa" / "x.mp3").write_bytes(b"abd")  # same size, other content
    assert Manifest(tmp_path).cached("saa/x.mp3") is None
    assert Manifest(tmp_path).cached("saa/unknown.mp3") is None


def test_manifest_records_merge_with_other_writers(tmp_path: Path) -> None:
    first, second = Manifest(tmp_path), Manifest(tmp_path)
    first.record(ManifestEntry("a", "http://h/a", 1, "0" * 64))
    second.record(ManifestEntry("b", "http://h/b", 1, "1" * 64))
    assert set(Manifest(tmp_path).entries) == {"a", "b"}


def test_an_unreadable_manifest_is_ignored_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "manifest.json").write_text("{not json")
    assert Manifest(tmp_path).entries == {}
    assert "ignoring unreadable stimulus manifest" in caplog.text


def test_docstring_examples_run() -> None:
    assert doctest.testmod(download, raise_on_error=False).failed == 0
