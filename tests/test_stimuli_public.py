"""Tests of speat_metric.stimuli.public: the Speech Accent Archive and Zenodo fetchers against a local server."""

from __future__ import annotations

import doctest
import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from http_servers import StaticFileServer, add_zenodo_record

from speat_metric.stimuli import public
from speat_metric.stimuli.download import RetryPolicy
from speat_metric.stimuli.errors import DownloadError, RemoteFileMissingError
from speat_metric.stimuli.public import (
    FetchReport,
    ZenodoFile,
    default_cache_dir,
    fetch_mess_clips,
    fetch_saa_recordings,
    list_zenodo_files,
)

FAST = RetryPolicy(attempts=3, backoff=0.0, timeout=5.0)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_entries(cache: Path) -> dict[str, dict]:
    return {entry["path"]: entry for entry in json.loads((cache / "manifest.json").read_text())["files"]}


@pytest.fixture
def recordings(static_server: StaticFileServer, make_audio: Callable[..., bytes]) -> dict[str, bytes]:
    """Two SAA recordings served under /soundtracks/."""
    served = {"english1": make_audio("mp3", seconds=1.0, frequency=300), "korean1": make_audio("mp3", frequency=500)}
    for name, data in served.items():
        static_server.add_file(f"/soundtracks/{name}.mp3", data, "audio/mpeg")
    return served


def fetch(server: StaticFileServer, cache: Path, names: list[str]) -> FetchReport:
    return fetch_saa_recordings(names, cache_dir=cache, base_url=f"{server.url}/soundtracks", retry=FAST,
                                progress=False)


def test_first_call_downloads_and_writes_the_manifest(static_server, recordings, tmp_path: Path) -> None:
    report = fetch(static_server, tmp_path, ["english1", "korean1"])
    assert sorted(report.downloaded) == ["english1", "korean1"] and report.missing == {}
    entries = manifest_entries(tmp_path)
    for name, data in recordings.items():
        assert (tmp_path / "saa" / f"{name}.mp3").read_bytes() == data
        assert report.sha256[name] == sha256(data)
        entry = entries[f"saa/{name}.mp3"]
        assert (entry["url"], entry["size"], entry["sha256"]) == (f"{static_server.url}/soundtracks/{name}.mp3",
                                                                  len(data), sha256(data))
    assert static_server.count("GET") == 2


def test_second_call_uses_the_cache_and_makes_no_request(static_server, recordings, tmp_path: Path) -> None:
    fetch(static_server, tmp_path, ["english1", "korean1"])
    static_server.clear_requests()
    report = fetch(static_server, tmp_path, ["english1", "korean1"])
    assert static_server.count() == 0
    assert report.downloaded == [] and set(report.files) == {"english1", "korean1"}
    assert report.sha256["korean1"] == sha256(recordings["korean1"])


def test_a_damaged_cached_file_is_fetched_again(static_server, recordings, tmp_path: Path) -> None:
    fetch(static_server, tmp_path, ["english1"])
    target = tmp_path / "saa" / "english1.mp3"
    target.write_bytes(b"X" * target.stat().st_size)  # same size, other content
    static_server.clear_requests()
    report = fetch(static_server, tmp_path, ["english1"])
    assert report.downloaded == ["english1"] and static_server.count("GET") == 1
    assert target.read_bytes() == recordings["english1"]


def test_a_dropped_connection_still_gives_a_complete_recording(static_server, recordings, tmp_path) -> None:
    static_server.drop_connection("/soundtracks/english1.mp3", after_bytes=1000, times=2)
    report = fetch(static_server, tmp_path, ["english1"])
    assert report.files["english1"].read_bytes() == recordings["english1"]
    assert manifest_entries(tmp_path)["saa/english1.mp3"]["sha256"] == sha256(recordings["english1"])


def test_404_and_html_answers_are_reported_missing(static_server, recordings, tmp_path: Path) -> None:
    static_server.add_file("/soundtracks/english5.mp3", b"<!DOCTYPE html><html>moved</html>", "text/html")
    report = fetch(static_server, tmp_path, ["english1", "english9999", "english5"])
    assert report.missing == {
        "english9999": f"not available at {static_server.url}/soundtracks (HTTP 404)",
        "english5": f"not available at {static_server.url}/soundtracks (served an HTML page, not mp3 audio)"}
    assert set(report.files) == {"english1"}
    assert sorted(p.name for p in (tmp_path / "saa").iterdir()) == ["english1.mp3"]
    assert set(manifest_entries(tmp_path)) == {"saa/english1.mp3"}


def test_a_failing_server_stops_the_batch_saying_how_far_it_got(static_server, recordings, tmp_path) -> None:
    static_server.fail("/soundtracks/korean1.mp3", 403)
    with pytest.raises(DownloadError, match=r"korean1\.mp3: HTTP 403 .*\(1 of 2 recordings were downloaded before "
                                            r"this; run again to continue\)"):
        fetch(static_server, tmp_path, ["english1", "korean1"])
    assert set(manifest_entries(tmp_path)) == {"saa/english1.mp3"}


def test_base_url_and_cache_come_from_the_environment(static_server, recordings, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEAT_SAA_BASE_URL", f"{static_server.url}/soundtracks/")
    monkeypatch.setenv("SPEAT_CACHE", str(tmp_path / "root"))
    report = fetch_saa_recordings(["korean1"], retry=FAST, progress=False)
    assert report.files["korean1"] == tmp_path / "root" / "stimuli" / "saa" / "korean1.mp3"
    assert static_server.count("GET", "/soundtracks/korean1.mp3") == 1


def test_default_cache_dir_follows_speat_cache_then_hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEAT_CACHE", str(tmp_path / "speat"))
    assert default_cache_dir() == tmp_path / "speat" / "stimuli"
    monkeypatch.delenv("SPEAT_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert default_cache_dir() == tmp_path / "hf" / "speat" / "stimuli"


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def mess_audio(make_audio: Callable[..., bytes]) -> dict[str, bytes]:
    return {code: make_audio("wav", frequency=250 + 50 * i)
            for i, code in enumerate(["AF1M24", "HM2T03", "SF3V10", "CM1M01"])}


def fetch_mess(server: StaticFileServer, cache: Path, codes: list[str]) -> FetchReport:
    return fetch_mess_clips(codes, cache_dir=cache, base_url=server.url, retry=FAST, progress=False)


def test_mess_clips_are_extracted_from_a_zip_in_the_zenodo_record(static_server, mess_audio, tmp_path) -> None:
    archive = zip_of({f"MESS/{'Angry' if c[0] == 'A' else 'Other'}/{c}_SCR.wav": d for c, d in mess_audio.items()})
    record = add_zenodo_record(static_server, "3813437", {"MESS.zip": archive, "README.txt": b"about"})
    report = fetch_mess(static_server, tmp_path, ["AF1M24", "SF3V10"])
    assert report.missing == {} and sorted(report.downloaded) == ["AF1M24", "SF3V10"]
    assert sorted(p.name for p in (tmp_path / "mess").iterdir()) == ["AF1M24_SCR.wav", "SF3V10_SCR.wav"]
    assert (tmp_path / "mess" / "SF3V10_SCR.wav").read_bytes() == mess_audio["SF3V10"]
    entries = manifest_entries(tmp_path)
    zip_url = record["files"][0]["links"]["self"]
    assert entries["zenodo/3813437/MESS.zip"]["source_checksum"] == "md5:" + hashlib.md5(archive).hexdigest()
    assert entries["mess/AF1M24_SCR.wav"]["url"] == f"{zip_url}#MESS/Angry/AF1M24_SCR.wav"
    assert entries["mess/AF1M24_SCR.wav"]["sha256"] == sha256(mess_audio["AF1M24"])
    assert static_server.count("GET", "/api/records/7378320") == 0  # all found in the first record
    static_server.clear_requests()
    again = fetch_mess(static_server, tmp_path, ["AF1M24", "SF3V10"])
    assert static_server.count() == 0 and again.downloaded == []
    more = fetch_mess(static_server, tmp_path, ["AF1M24", "CM1M01"])  # the kept archive serves new clips
    assert more.downloaded == ["CM1M01"]
    assert static_server.count("GET", "/api/records/3813437/files/MESS.zip/content") == 0


def test_single_wav_files_of_a_later_record_are_downloaded(static_server, mess_audio, tmp_path: Path) -> None:
    add_zenodo_record(static_server, "7378320", {f"{c}_SCR.wav": d for c, d in mess_audio.items()})
    report = fetch_mess(static_server, tmp_path, ["HM2T03", "SM3V99"])  # record 3813437 is absent: 404, skipped
    assert report.files["HM2T03"].read_bytes() == mess_audio["HM2T03"]
    assert report.missing == {"SM3V99": f"in none of the Zenodo records 3813437, 7378320 at {static_server.url}"}
    assert static_server.count("GET", "/api/records/3813437") == 1
    assert static_server.count("GET", prefix="/api/records/7378320/files/") == 1  # only the wanted clip


def test_a_corrupt_archive_is_deleted_and_reported(static_server, tmp_path: Path) -> None:
    add_zenodo_record(static_server, "3813437", {"MESS.zip": b"PK\x03\x04 definitely not a zip"})
    with pytest.raises(DownloadError, match=r"MESS\.zip \(from .*\) is not a valid zip archive .*it was deleted"):
        fetch_mess(static_server, tmp_path, ["AF1M24"])
    assert not (tmp_path / "zenodo" / "3813437" / "MESS.zip").exists()


def test_zenodo_listing_reads_both_api_forms(static_server) -> None:
    static_server.add_json("/api/records/1", {"files": {"entries": {"a.zip": {
        "key": "a.zip", "size": 3, "checksum": "md5:abc",
        "links": {"self": "https://zenodo.org/api/records/1/files/a.zip"}}}}})
    listed = list_zenodo_files("1", base_url=static_server.url, retry=FAST)
    assert listed == [ZenodoFile("a.zip", 3, "md5:abc", f"{static_server.url}/api/records/1/files/a.zip/content")]
    static_server.add_json("/api/records/2", {"hits": []})
    with pytest.raises(DownloadError, match=r"/api/records/2 is not a Zenodo record with a file list"):
        list_zenodo_files("2", base_url=static_server.url, retry=FAST)
    with pytest.raises(RemoteFileMissingError, match=r"/api/records/3: HTTP 404"):
        list_zenodo_files("3", base_url=static_server.url, retry=FAST)


def test_docstring_examples_run() -> None:
    assert doctest.testmod(public, raise_on_error=False).failed == 0
