"""Tests of the ``speat stimuli`` command (speat_metric/cli.py), against a local server for the downloads."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from http_servers import StaticFileServer, add_zenodo_record

from speat_metric.cli import main
from speat_metric.stimuli.battery import get_speat_test
from speat_metric.stimuli.selections import demo_available, demo_speat_test


def test_list_shows_every_test_with_group_names_and_sizes(capsys: pytest.CaptureFixture) -> None:
    assert main(["stimuli", "list"]) == 0
    out = capsys.readouterr().out
    for name, label in (("gender", "T6"), ("age", "T10"), ("native", "T8")):
        spec = get_speat_test(name)
        groups = "   ".join(f"{g.role} {g.name} ({len(g)})" for g in spec.groups)
        assert f"  {label:<4} {name:<22} {groups}   pairs: {len(spec.pairs) or 'none'}  (speat's original test)" in out
    assert "Slaughter, Greenberg, Schwartz and Caliskan (2023)" in out
    if demo_available():
        assert "demo set: SYNTHETIC PIPELINE CHECK, NOT A BIAS MEASUREMENT" in out
        assert f"X {demo_speat_test('age').x.name} ({len(demo_speat_test('age').x)})" in out
    else:
        assert "demo set: not installed" in out


def serve(server: StaticFileServer, stimulus_audio, ids, *, leave_out: tuple[str, ...] = ()) -> None:
    clips = {}
    for stimulus_id in ids:
        if stimulus_id in leave_out:
            continue
        corpus, _, name = stimulus_id.partition("/")
        if corpus == "saa":
            server.add_file(f"/soundtracks/{name}.mp3", stimulus_audio(stimulus_id))
        else:
            clips[f"{name}_SCR.wav"] = stimulus_audio(stimulus_id)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in clips.items():
            bundle.writestr(f"MESS/{name}", data)
    add_zenodo_record(server, "3813437", {"MESS.zip": buffer.getvalue()})


def download(server: StaticFileServer, cache: Path, *extra: str) -> int:
    return main(["stimuli", "download", "--tests", "gender", "--cache-dir", str(cache), "--no-progress",
                 "--base-url-saa", f"{server.url}/soundtracks", "--base-url-zenodo", server.url, *extra])


def test_download_fetches_a_test_and_a_second_run_requests_nothing(static_server, stimulus_audio, tmp_path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    serve(static_server, stimulus_audio, get_speat_test("gender").stimulus_ids)
    assert download(static_server, tmp_path) == 0
    out = capsys.readouterr().out
    assert f"stimulus cache: {tmp_path}" in out
    assert "gender  X female 60/60   Y male 60/60   A pleasant 60/60   B unpleasant 60/60" in out
    assert "all 240 stimuli are in the cache" in out
    assert len(list((tmp_path / "saa").iterdir())) == 120 and len(list((tmp_path / "mess").iterdir())) == 60 * 2
    static_server.clear_requests()
    assert download(static_server, tmp_path) == 0
    assert static_server.count() == 0


def test_download_reports_what_is_missing_and_exits_1(static_server, stimulus_audio, tmp_path,
                                                      capsys: pytest.CaptureFixture) -> None:
    spec = get_speat_test("gender")
    absent = (spec.x.stimulus_ids[0], spec.a.stimulus_ids[0])
    serve(static_server, stimulus_audio, spec.stimulus_ids, leave_out=absent)
    assert download(static_server, tmp_path) == 1
    out = capsys.readouterr().out
    assert "gender  X female 59/60   Y male 60/60   A pleasant 59/60   B unpleasant 60/60" in out
    assert "missing 2 of 240 stimuli:" in out
    assert f"  not available at {static_server.url}/soundtracks (HTTP 404): {absent[0]}" in out
    assert f"  in none of the Zenodo records 3813437, 7378320 at {static_server.url}: {absent[1]}" in out


def test_download_refuses_an_unknown_test(tmp_path, capsys: pytest.CaptureFixture) -> None:
    assert main(["stimuli", "download", "--tests", "gender,race", "--cache-dir", str(tmp_path)]) == 2
    assert "speat stimuli download: error: unknown SpEAT test 'race'" in capsys.readouterr().err


def test_download_with_the_servers_down_says_what_is_cached_and_what_is_missing(
        static_server, stimulus_audio, tmp_path, capsys: pytest.CaptureFixture) -> None:
    serve(static_server, stimulus_audio, get_speat_test("gender").stimulus_ids)
    assert download(static_server, tmp_path) == 0  # caches the attributes every test shares
    capsys.readouterr()
    with StaticFileServer() as server:
        url = server.url  # the server is stopped: nothing listens on this port any more
    code = main(["stimuli", "download", "--tests", "age", "--cache-dir", str(tmp_path), "--no-progress",
                 "--retries", "2", "--base-url-saa", f"{url}/soundtracks", "--base-url-zenodo", url])
    assert code == 1
    out = capsys.readouterr().out
    cached, age = set(get_speat_test("gender").stimulus_ids), get_speat_test("age")
    have = {role: sum(s in cached for s in group.stimulus_ids) for role, group in zip("XYAB", age.groups)}
    assert have["A"] == have["B"] == 60 and have["X"] + have["Y"] < 116  # some speakers are in both tests
    assert (f"age     X young {have['X']}/58   Y old {have['Y']}/58   A pleasant 60/60   B unpleasant 60/60"
            in out)
    missing = 116 - have["X"] - have["Y"]
    assert f"missing {missing} of 236 stimuli:" in out
    assert f"  could not be downloaded from {url}/soundtracks: saa/" in out and f"({missing} in all)" in out


def test_bare_stimuli_command_prints_its_help(capsys: pytest.CaptureFixture) -> None:
    assert main(["stimuli"]) == 0
    assert "{list,download}" in capsys.readouterr().out
