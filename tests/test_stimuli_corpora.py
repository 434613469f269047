"""Tests of speat_metric.stimuli.corpora through real HTTP: a local server on 127.0.0.1 serves tiny archives made here,
in the layouts of the CORAAL and TORGO distributions, and a GitHub-like folder of synthesized voices."""

from __future__ import annotations

import csv
import doctest
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
from http_servers import StaticFileServer, add_github_folder

from speat_metric.stimuli import corpora
from speat_metric.stimuli.corpora import (
    CORAAL_BASE_URL_ENV,
    SPEAT_REPO,
    SPEAT_REPO_COMMIT,
    SYNTHESIZED_DIR,
    CoraalSegment,
    TorgoClip,
    fetch_coraal_segments,
    fetch_synthesized_voices,
    fetch_torgo_clips,
)
from speat_metric.stimuli.download import RetryPolicy
from speat_metric.stimuli.errors import DownloadError, StimulusError

FAST = RetryPolicy(attempts=3, backoff=0.0, timeout=5.0)
RATE = 8_000
PART01 = "/coraal/roc/2020.05/ROC_audio_part01_2020.05.tar.gz"
PART02 = "/coraal/roc/2020.05/ROC_audio_part02_2020.05.tar.gz"
SOURCE_A = "data/CORAAL/ROC/ROC_audio_part01_2020.05/ROC_se0_ag1_f_02_1.wav"
SOURCE_B = "data/CORAAL/ROC/ROC_audio_part01_2020.05/ROC_se0_ag1_m_01_1.wav"


@pytest.fixture(autouse=True)
def _no_corpus_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in (corpora.SYNTHESIZED_BASE_URL_ENV, corpora.GITHUB_API_URL_ENV, CORAAL_BASE_URL_ENV,
                     corpora.TORGO_BASE_URL_ENV):
        monkeypatch.delenv(variable, raising=False)


def wav(seed: int, seconds: float = 3.0, subtype: str = "PCM_16") -> bytes:
    """Distinct noise (int16 range) as WAV bytes, so that any off-by-one in a cut shows."""
    samples = np.random.default_rng(seed).integers(-20000, 20000, int(seconds * RATE), dtype=np.int16)
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, RATE, subtype=subtype, format="WAV")
    return buffer.getvalue()


def tar_bytes(members: dict[str, bytes], mode: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@pytest.fixture
def coraal(static_server: StaticFileServer) -> dict[str, bytes]:
    """Two ROC archives as CORAAL publishes them (flat .wav members); only part01 holds selected interviews."""
    interviews = {"ROC_se0_ag1_f_02_1.wav": wav(1), "ROC_se0_ag1_m_01_1.wav": wav(2), "ROC_se0_ag2_f_01_1.wav": wav(3)}
    static_server.add_file(PART01, tar_bytes(interviews, "w:gz"), "application/gzip")
    static_server.add_file(PART02, tar_bytes({"ROC_se0_ag3_f_01_1.wav": wav(4)}, "w:gz"), "application/gzip")
    return interviews


def segments() -> list[CoraalSegment]:
    return [CoraalSegment("1.wav", SOURCE_A, 0.25, 1.5), CoraalSegment("7.wav", SOURCE_A, 1.6, 2.9001),
            CoraalSegment("9", SOURCE_B, 0.0, 0.8)]  # ".wav" is optional


def fetch_coraal(server: StaticFileServer, cache: Path, chosen: list[CoraalSegment], **options):
    return fetch_coraal_segments(chosen, cache, base_url=f"{server.url}/coraal", retry=FAST, progress=False, **options)


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_coraal_fetches_only_the_needed_archive_and_cuts_the_exact_samples(static_server, coraal, tmp_path) -> None:
    report = fetch_coraal(static_server, tmp_path, segments())
    assert static_server.count("GET", PART01) == 1 and static_server.count(prefix=PART02) == 0
    assert sorted(report.files) == ["1.wav", "7.wav", "9"] and report.missing == {}
    for segment in segments():
        source, rate = soundfile.read(io.BytesIO(coraal[segment.interview]), dtype="int16")
        expected = source[round(segment.start_time * rate):round(segment.end_time * rate)]
        cut, cut_rate = soundfile.read(report.files[segment.name], dtype="int16")
        assert cut_rate == rate and np.array_equal(cut, expected)
        assert soundfile.info(report.files[segment.name]).subtype == "PCM_16"
    # only the cut clips stay: no archive, no interview, no work folder
    assert files_under(tmp_path) == ["coraal/1.wav", "coraal/7.wav", "coraal/9.wav", "coraal/TERMS.txt",
                                     "manifest.json"]
    manifest = json.loads((tmp_path / "manifest.json").read_text())["files"]
    archive_entry = next(entry for entry in manifest if entry["path"].startswith("archives/"))
    assert archive_entry["url"].endswith(PART01)  # the archive's size and SHA-256 stay pinned after its deletion


def test_a_dropped_archive_download_resumes_with_a_range_request(static_server, coraal, tmp_path) -> None:
    static_server.drop_connection(PART01, after_bytes=5000)
    report = fetch_coraal(static_server, tmp_path, segments()[:1])
    assert [r.headers.get("range") for r in static_server.requests] == [None, "bytes=5000-"]
    assert report.files["1.wav"].is_file()


def test_terms_are_printed_once_and_a_rerun_downloads_nothing(static_server, coraal, tmp_path, capsys) -> None:
    fetch_coraal(static_server, tmp_path, segments()[:2])
    assert "[coraal] CORAAL" in capsys.readouterr().err and "https://oraal.uoregon.edu/coraal" in \
        (tmp_path / "coraal" / "TERMS.txt").read_text()
    static_server.clear_requests()
    again = fetch_coraal(static_server, tmp_path, segments()[:2])
    assert static_server.requests == [] and again.downloaded == [] and sorted(again.files) == ["1.wav", "7.wav"]
    more = fetch_coraal(static_server, tmp_path, segments())  # a new segment: the archive again, the terms not
    assert more.downloaded == ["9"] and static_server.count("GET", PART01) == 1
    assert capsys.readouterr().err == ""


def test_a_changed_segment_is_cut_again(static_server, coraal, tmp_path) -> None:
    fetch_coraal(static_server, tmp_path, segments()[:1])
    moved = CoraalSegment("1.wav", SOURCE_A, 0.5, 1.0)
    report = fetch_coraal(static_server, tmp_path, [moved])
    assert report.downloaded == ["1.wav"] and soundfile.info(report.files["1.wav"]).frames == 0.5 * RATE


def test_an_archive_that_differs_from_its_pinned_download_is_refused(static_server, coraal, tmp_path) -> None:
    fetch_coraal(static_server, tmp_path, segments()[:1])
    static_server.add_file(PART01, tar_bytes({"ROC_se0_ag1_m_01_1.wav": wav(99)}, "w:gz"))  # a tampered archive
    with pytest.raises(DownloadError, match=r"ROC_audio_part01_2020\.05\.tar\.gz is not the file first downloaded "
                                            r"on .*: refused, nothing kept") as caught:
        fetch_coraal(static_server, tmp_path, segments()[2:])
    assert "\n" not in str(caught.value)
    assert files_under(tmp_path) == ["coraal/1.wav", "coraal/TERMS.txt", "manifest.json"]


def test_kept_archives_are_reused_without_a_request(static_server, coraal, tmp_path) -> None:
    fetch_coraal(static_server, tmp_path, segments()[:1], keep_archives=True)
    assert (tmp_path / "archives" / "coraal" / PART01.removeprefix("/coraal/")).is_file()
    static_server.clear_requests()
    report = fetch_coraal(static_server, tmp_path, segments(), keep_archives=True)
    assert static_server.requests == [] and sorted(report.downloaded) == ["7.wav", "9"]


def test_what_cannot_be_cut_is_reported_missing(static_server, coraal, tmp_path) -> None:
    absent_release = CoraalSegment("2.wav", "CORAAL/ROC/ROC_audio_part01_2019.01/ROC_se0_ag1_f_02_1.wav", 0, 1)
    not_in_archive = CoraalSegment("3.wav", "ROC_audio_part02_2020.05/ROC_se0_ag9_f_01_1.wav", 0, 1)
    too_long = CoraalSegment("4.wav", SOURCE_B, 2.0, 3.5)
    report = fetch_coraal(static_server, tmp_path, [absent_release, not_in_archive, too_long])
    assert report.files == {}
    assert report.missing["2.wav"].endswith("ROC_audio_part01_2019.01.tar.gz is not available (HTTP 404)")
    assert report.missing["3.wav"] == (f"ROC_se0_ag9_f_01_1.wav is not in {static_server.url}{PART02}")
    assert report.missing["4.wav"].startswith("segment ends at 3.5 s, after the end of ROC_se0_ag1_m_01_1.wav (3.000")


TORGO_FC = {"FC/FC03/Session2/wav_headMic/0005.wav": wav(10), "FC/FC03/Session2/wav_headMic/0006.wav": wav(11),
            "FC/FC03/Session2/wav_arrayMic/0005.wav": wav(12), "FC/FC03/Session2/prompts/0005.txt": b"Although",
            "FC/FC01/Session1/wav_headMic/0100.wav": wav(13)}


@pytest.fixture
def torgo(static_server: StaticFileServer) -> None:
    static_server.add_file("/torgo/FC.tar.bz2", tar_bytes(TORGO_FC, "w:bz2"))
    static_server.add_file("/torgo/F.tar.bz2", tar_bytes({"F/F01/Session1/wav_headMic/0001.wav": wav(14)}, "w:bz2"))
    static_server.add_file("/torgo/M.tar.bz2", tar_bytes({"M/M01/Session1/wav_headMic/0001.wav": wav(15)}, "w:bz2"))


def test_torgo_fetches_only_the_needed_groups_and_keeps_only_the_selected_clips(static_server, torgo, tmp_path,
                                                                                capsys) -> None:
    clips = [TorgoClip("0005_FC03_Session2", "data/TORGO/FC/FC03/Session2/wav_headMic/0005.wav"),
             TorgoClip("0100_FC01_Session1", "data/TORGO/FC/FC01/Session1/wav_headMic/0100.wav"),
             TorgoClip("0001_F01_Session1", "data/TORGO/F/F01/Session1/wav_headMic/0001.wav")]
    report = fetch_torgo_clips(clips, tmp_path, base_url=f"{static_server.url}/torgo", retry=FAST, progress=False)
    assert sorted(r.path for r in static_server.requests) == ["/torgo/F.tar.bz2", "/torgo/FC.tar.bz2"]
    assert report.files["0005_FC03_Session2"].read_bytes() == TORGO_FC["FC/FC03/Session2/wav_headMic/0005.wav"]
    assert files_under(tmp_path) == ["manifest.json", "torgo/0001_F01_Session1.wav", "torgo/0005_FC03_Session2.wav",
                                     "torgo/0100_FC01_Session1.wav", "torgo/TERMS.txt"]
    assert capsys.readouterr().err.count("[torgo] TORGO") == 1
    static_server.clear_requests()
    fetch_torgo_clips(clips, tmp_path, base_url=f"{static_server.url}/torgo", retry=FAST, progress=False)
    assert static_server.requests == [] and capsys.readouterr().err == ""


VOICES = {"male_ms_sam.wav": wav(20), "male_ms_sam_fast.wav": wav(21), "female_ms_mary.wav": wav(22)}


def fetch_voices(server: StaticFileServer, cache: Path, names: list[str]):
    return fetch_synthesized_voices(names, cache, base_url=f"{server.url}/raw", api_url=server.url, retry=FAST,
                                    progress=False)


def test_voices_are_checked_against_githubs_listing(static_server, tmp_path) -> None:
    add_github_folder(static_server, SPEAT_REPO, SPEAT_REPO_COMMIT, SYNTHESIZED_DIR, VOICES)
    report = fetch_voices(static_server, tmp_path, ["male_ms_sam", "female_ms_mary.wav", "robot_unknown"])
    assert report.files["male_ms_sam"].read_bytes() == VOICES["male_ms_sam.wav"]
    assert report.missing == {"robot_unknown": f"not in {SYNTHESIZED_DIR} of {SPEAT_REPO} at commit e08f05ec"}
    assert static_server.count(prefix="/raw/") == 2  # the unlisted name was never requested
    entry = next(e for e in json.loads((tmp_path / "manifest.json").read_text())["files"]
                 if e["path"] == "human_synthesized/male_ms_sam.wav")
    assert entry["url"].endswith(f"/raw/{SPEAT_REPO_COMMIT}/data/human_synthesized/male_ms_sam.wav")
    assert entry["source_checksum"].startswith("git-blob-sha1:")
    static_server.clear_requests()
    assert fetch_voices(static_server, tmp_path, ["male_ms_sam"]).downloaded == [] and static_server.requests == []


def test_a_voice_that_differs_from_the_listing_is_refused(static_server, tmp_path) -> None:
    served = {**VOICES, "male_ms_sam.wav": wav(23)}
    add_github_folder(static_server, SPEAT_REPO, SPEAT_REPO_COMMIT, SYNTHESIZED_DIR, served, listed=VOICES)
    with pytest.raises(DownloadError, match=r"male_ms_sam\.wav does not match the size and git blob id GitHub lists "
                                            r"for it at commit e08f05ec; refused, nothing kept$"):
        fetch_voices(static_server, tmp_path, ["male_ms_sam"])
    assert files_under(tmp_path) == ["human_synthesized/TERMS.txt"]


def test_without_the_api_the_first_download_is_pinned(static_server, tmp_path, caplog) -> None:
    static_server.add_file(f"/raw/{SPEAT_REPO_COMMIT}/{SYNTHESIZED_DIR}/male_ms_sam.wav", VOICES["male_ms_sam.wav"])
    report = fetch_voices(static_server, tmp_path, ["male_ms_sam"])  # the listing answers 404
    assert report.downloaded == ["male_ms_sam"] and "first download is pinned instead" in caplog.text
    report.files["male_ms_sam"].unlink()
    static_server.add_file(f"/raw/{SPEAT_REPO_COMMIT}/{SYNTHESIZED_DIR}/male_ms_sam.wav", wav(24))
    with pytest.raises(DownloadError, match=r"male_ms_sam\.wav is not the file first downloaded on"):
        fetch_voices(static_server, tmp_path, ["male_ms_sam"])
    assert not (tmp_path / "human_synthesized" / "male_ms_sam.wav").exists()


def test_bad_input_is_refused_before_any_request(static_server, monkeypatch) -> None:
    with pytest.raises(StimulusError, match=r"source 'ROC/x\.wav' is not of the form <COMPONENT>_audio_partNN"):
        CoraalSegment("1.wav", "ROC/x.wav", 0, 1)
    with pytest.raises(StimulusError, match=r"CORAAL segment 1\.wav: start_time 2\.0 and end_time 1\.0 do not make"):
        CoraalSegment("1.wav", SOURCE_A, 2.0, 1.0)
    with pytest.raises(StimulusError, match=r"source 'data/TORGO/X/X01/Session1/wav_headMic/1\.wav' is not of"):
        TorgoClip("1", "data/TORGO/X/X01/Session1/wav_headMic/1.wav")
    with pytest.raises(StimulusError, match=r"synthesized voice '\.\./x' is not a plain file name"):
        fetch_synthesized_voices(["../x"], progress=False)
    with pytest.raises(StimulusError, match=r"commit 'e08f05ec' is not a full git commit id; give its 40 hex"):
        fetch_synthesized_voices(["male_ms_sam"], commit="e08f05ec", progress=False)
    with pytest.raises(StimulusError, match=r"two different CORAAL segments are both named '1\.wav'"):
        fetch_coraal_segments([CoraalSegment("1.wav", SOURCE_A, 0, 1), CoraalSegment("1.wav", SOURCE_B, 0, 1)])
    monkeypatch.setenv(CORAAL_BASE_URL_ENV, "lingtools.uoregon.edu/coraal")
    with pytest.raises(StimulusError, match=r"\$SPEAT_CORAAL_BASE_URL 'lingtools\.uoregon\.edu/coraal' is not an"):
        fetch_coraal_segments(segments())
    assert static_server.requests == []


def test_the_base_url_comes_from_the_environment(static_server, coraal, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(CORAAL_BASE_URL_ENV, f"{static_server.url}/coraal/")
    report = fetch_coraal_segments(segments()[:1], tmp_path, retry=FAST, progress=False)
    assert report.downloaded == ["1.wav"] and static_server.count("GET", PART01) == 1


def test_the_studys_selections_map_onto_the_distributions(shared_dir: Path) -> None:
    data = shared_dir / "stimuli" / "speat-battery" / "data"
    with open(data / "coraal_buckeye_joined" / "clip_info.csv", newline="") as file:
        rows = [row for row in csv.DictReader(file) if row["speaker_race"] == "african_american"]
    coraal_segments = [CoraalSegment.from_row(row) for row in rows]
    archives = {segment.archive_path for segment in coraal_segments}
    assert len(coraal_segments) == 60 and len(archives) == 24  # TESTS.md: DCB 19, ROC 16, ATL 9, PRV 8, VLD 5, LES 3
    assert "dcb/2018.10.06/DCB_audio_part08_2018.10.06.tar.gz" in archives
    with open(data / "TORGO" / "clip_info.csv", newline="") as file:
        clips = [TorgoClip.from_row(row) for row in csv.DictReader(file)]
    assert len(clips) == 120 and {clip.archive_path for clip in clips} == {"F.tar.bz2", "FC.tar.bz2", "M.tar.bz2",
                                                                          "MC.tar.bz2"}
    assert all(clip.source.endswith(clip.member) and clip.name.split("_")[1] in clip.member for clip in clips)


def test_docstring_examples_run() -> None:
    assert doctest.testmod(corpora, raise_on_error=False).failed == 0


def test_a_published_tests_torgo_clips_download_into_the_stimulus_cache_by_stimulus_id(static_server, tmp_path,
                                                                                      monkeypatch) -> None:
    """The catalogue's wiring (`loaders.fetch_corpus_clips`): every TORGO clip of disability-torgo, served from the
    group archives in the distribution's layout, comes back under its stimulus id, and the listing then says cached."""
    from speat_metric.stimuli import DownloadSource
    from speat_metric.stimuli.battery import audio_status, battery_clips, get_speat_test
    from speat_metric.stimuli.loaders import fetch_corpus_clips

    clips = [battery_clips()[stimulus_id] for stimulus_id in get_speat_test("disability-torgo").stimulus_ids
             if stimulus_id.startswith("torgo/")]
    groups: dict[str, dict[str, bytes]] = {}
    for number, clip in enumerate(clips):
        groups.setdefault(clip.path.split("/")[0], {})[clip.path] = wav(100 + number, seconds=0.05)
    for group, members in groups.items():
        static_server.add_file(f"/torgo/{group}.tar.bz2", tar_bytes(members, "w:bz2"))
    monkeypatch.setenv(corpora.TORGO_BASE_URL_ENV, f"{static_server.url}/torgo")
    assert "TORGO: downloadable" in audio_status("disability-torgo", cache_dir=tmp_path)
    files = fetch_corpus_clips("torgo", clips, DownloadSource(cache_dir=tmp_path, retry=FAST), progress=False)
    assert sorted(files) == sorted(clip.stimulus_id for clip in clips) and len(files) == 120
    for number, clip in enumerate(clips):
        assert Path(files[clip.stimulus_id]).read_bytes() == groups[clip.path.split("/")[0]][clip.path]
    assert "TORGO: cached" in audio_status("disability-torgo", cache_dir=tmp_path)
