"""Tests of speat_metric.stimuli.sources: local layouts (fixture trees with generated audio), the Hub source against
a local Hub-compatible server, and resolve_source."""

from __future__ import annotations

import csv
import doctest
from collections.abc import Callable
from pathlib import Path

import pytest
from http_servers import HubServer

from speat_metric.stimuli import sources
from speat_metric.stimuli.errors import StimulusError
from speat_metric.stimuli.selections import saa_speakers
from speat_metric.stimuli.sources import (
    KAGGLE_COLUMNS,
    DemoSource,
    DownloadSource,
    HubSource,
    LocalDirectorySource,
    StimulusRef,
    resolve_source,
)

# english102 (speakerid 65) and korean1 (238) are in the selections; the ids come from the packaged metadata.
ENGLISH102 = StimulusRef("saa/english102", "saa", "english102", 65)
KOREAN1 = StimulusRef("saa/korean1", "saa", "korean1", 238)
NEWEST = max(saa_speakers().values(), key=lambda s: s.speaker_id)
NEWER = StimulusRef(f"saa/{NEWEST.name}", "saa", NEWEST.name, NEWEST.speaker_id)
CLIP = StimulusRef("mess/AF1M24", "mess", "AF1M24")


def test_packaged_ids_used_here_are_right() -> None:
    assert (saa_speakers()["english102"].speaker_id, saa_speakers()["korean1"].speaker_id) == (65, 238)
    assert NEWEST.speaker_id == 2979


def write_kaggle(root: Path, rows: list[dict[str, str]], columns=KAGGLE_COLUMNS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "speakers_all.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=[*columns, "Unnamed: 9"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return root / "speakers_all.csv"


def kaggle_row(name: str, speakerid: int, file_missing: str = "False") -> dict[str, str]:
    return {"age": "24.0", "age_onset": "0.0", "birthplace": "x, usa", "filename": name, "native_language": "english",
            "sex": "male", "speakerid": str(speakerid), "country": "usa", "file_missing?": file_missing}


def test_kaggle_snapshot_layout_checks_every_id_against_speakers_all(tmp_path: Path, make_audio) -> None:
    # the Kaggle zip nests recordings/recordings/; english103 is listed with another speakerid, korean1 is marked
    # file_missing?, the newest selected recording (speakerid 2979) is not in the snapshot at all.
    csv_path = write_kaggle(tmp_path, [kaggle_row("english102", 65), kaggle_row("english103", 9999),
                                       kaggle_row("korean1", 238, "True"), kaggle_row("afrikaans1", 2172)])
    recordings = tmp_path / "recordings" / "recordings"
    recordings.mkdir(parents=True)
    for name in ["english102", "english103", "afrikaans1"]:
        (recordings / f"{name}.mp3").write_bytes(make_audio("mp3"))
    other = StimulusRef("saa/english103", "saa", "english103", 66)
    resolution = LocalDirectorySource(tmp_path).resolve([ENGLISH102, other, KOREAN1, NEWER])
    assert resolution.files == {"saa/english102": recordings / "english102.mp3"}
    assert resolution.missing == {
        "saa/english103": f"{csv_path} gives english103 speakerid 9999, the selection 66 (a different recording)",
        "saa/korean1": f"marked file_missing? in {csv_path}",
        NEWER.stimulus_id: f"not listed in {csv_path}",  # the snapshot's ids reach 9999, so not "newer"
    }


def test_kaggle_snapshot_names_recordings_newer_than_its_last_id(tmp_path: Path, make_audio) -> None:
    csv_path = write_kaggle(tmp_path, [kaggle_row("english102", 65), kaggle_row("afrikaans1", 2172)])
    (tmp_path / "recordings").mkdir()
    (tmp_path / "recordings" / "english102.mp3").write_bytes(make_audio("mp3"))
    resolution = LocalDirectorySource(tmp_path).resolve([ENGLISH102, NEWER])
    assert resolution.missing == {
        NEWER.stimulus_id: f"newer than the Kaggle snapshot {csv_path} (its speakerids end at 2172)"}


def test_metadata_with_other_columns_is_refused_naming_the_expected_ones(tmp_path: Path) -> None:
    write_kaggle(tmp_path, [], columns=("speaker", "file", "age"))
    with pytest.raises(StimulusError, match=r"speakers_all\.csv does not have the columns of the Kaggle Speech Accent "
                                            r"Archive metadata: expected age, age_onset, birthplace, filename, "
                                            r"native_language, sex, speakerid, country, file_missing\?; missing "
                                            r"age_onset, birthplace, filename"):
        LocalDirectorySource(tmp_path).resolve([ENGLISH102])


def test_an_explicit_metadata_file_is_used(tmp_path: Path, make_audio) -> None:
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "english102.mp3").write_bytes(make_audio("mp3"))
    csv_path = write_kaggle(tmp_path / "elsewhere", [kaggle_row("english102", 65, "True")])
    resolution = LocalDirectorySource(tmp_path / "audio", metadata=csv_path).resolve([ENGLISH102])
    assert resolution.missing == {"saa/english102": f"marked file_missing? in {csv_path}"}


def test_flat_folder_of_mp3(tmp_path: Path, make_audio) -> None:
    for name in ["english102", "korean1"]:
        (tmp_path / f"{name}.mp3").write_bytes(make_audio("mp3"))
    (tmp_path / ".english9.mp3.partial").write_bytes(b"half")  # an unfinished download is never taken
    missing_ref = StimulusRef("saa/english9", "saa", "english9", 1)
    resolution = LocalDirectorySource(tmp_path).resolve([ENGLISH102, KOREAN1, missing_ref])
    assert resolution.files == {"saa/english102": tmp_path / "english102.mp3", "saa/korean1": tmp_path / "korean1.mp3"}
    assert resolution.missing == {"saa/english9": f"no SAA audio file of that name in {tmp_path}"}


def test_mess_folder_nested_by_emotion(tmp_path: Path, make_audio) -> None:
    folder = tmp_path / "MESS" / "Angry"
    folder.mkdir(parents=True)
    (folder / "AF1M24_SCR.wav").write_bytes(make_audio("wav"))
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "HM1T01_SCR.wav").write_bytes(make_audio("wav"))
    other = StimulusRef("mess/HM1T01", "mess", "HM1T01")
    resolution = LocalDirectorySource(tmp_path).resolve([CLIP, other])
    assert resolution.files == {"mess/AF1M24": folder / "AF1M24_SCR.wav"}
    assert set(resolution.missing) == {"mess/HM1T01"}


def test_cache_layout_and_refs_with_their_own_files(tmp_path: Path, make_audio) -> None:
    (tmp_path / "saa").mkdir()
    (tmp_path / "mess").mkdir()
    (tmp_path / "saa" / "english102.mp3").write_bytes(make_audio("mp3"))
    (tmp_path / "mess" / "AF1M24_SCR.wav").write_bytes(make_audio("wav"))
    own = tmp_path / "mine.flac"
    own.write_bytes(make_audio("flac"))
    refs = [ENGLISH102, CLIP, StimulusRef("custom/mine", "custom", "custom/mine", path=str(own)),
            StimulusRef("custom/gone", "custom", "custom/gone", path=str(tmp_path / "gone.wav"))]
    resolution = LocalDirectorySource(tmp_path).resolve(refs)
    assert resolution.files == {"saa/english102": tmp_path / "saa" / "english102.mp3",
                                "mess/AF1M24": tmp_path / "mess" / "AF1M24_SCR.wav", "custom/mine": own}
    assert resolution.missing == {"custom/gone": "audio file does not exist"}


def test_a_directory_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StimulusError, match=r"stimulus directory '.*nowhere' does not exist or is not a directory"):
        LocalDirectorySource(tmp_path / "nowhere")


def test_demo_source_only_has_its_own_clips(tmp_path: Path, make_audio) -> None:
    clip = tmp_path / "demo.flac"
    clip.write_bytes(make_audio("flac"))
    resolution = DemoSource(tmp_path).resolve([StimulusRef("demo-1", "demo", "demo-1", path=str(clip)), ENGLISH102])
    assert resolution.files == {"demo-1": clip}
    assert resolution.missing == {"saa/english102": "the demo set holds only synthetic clips, not the public corpora"}
    assert DemoSource().describe()["note"] == "SYNTHETIC PIPELINE CHECK, NOT A BIAS MEASUREMENT"


@pytest.fixture
def hub_dataset(hub_server: HubServer, make_audio: Callable[..., bytes]) -> dict[str, bytes]:
    """A dataset repository in the cache layout, with a v1 tag on a first commit that lacks korean1."""
    files = {"saa/english102.mp3": make_audio("mp3", frequency=310), "mess/AF1M24_SCR.wav": make_audio("wav"),
             "README.md": b"# stimuli", "saa/unrelated.mp3": make_audio("mp3", frequency=900)}
    hub_server.create_repo("speat-org/stimuli", repo_type="dataset")
    hub_server.commit("speat-org/stimuli", files, repo_type="dataset")
    hub_server.tag("speat-org/stimuli", "v1", repo_type="dataset")
    files["saa/korean1.mp3"] = make_audio("mp3", frequency=620)
    hub_server.commit("speat-org/stimuli", {"saa/korean1.mp3": files["saa/korean1.mp3"]}, repo_type="dataset")
    return files


def test_hub_dataset_source_downloads_only_the_needed_files(hub_server, hub_dataset, tmp_path: Path) -> None:
    source = HubSource("speat-org/stimuli", cache_dir=tmp_path, endpoint=hub_server.url)
    resolution = source.resolve([ENGLISH102, KOREAN1, CLIP], progress=False)
    assert {s: p.read_bytes() for s, p in resolution.files.items()} == {
        "saa/english102": hub_dataset["saa/english102.mp3"], "saa/korean1": hub_dataset["saa/korean1.mp3"],
        "mess/AF1M24": hub_dataset["mess/AF1M24_SCR.wav"]}
    main = hub_server.repos[("dataset", "speat-org/stimuli")].branches["main"]
    assert source.commit == main and source.describe()["commit"] == main
    downloaded = {r.path.rsplit("/", 1)[-1] for r in hub_server.requests if r.method == "GET" and "/resolve/" in r.path}
    assert downloaded == {"english102.mp3", "korean1.mp3", "AF1M24_SCR.wav"}


def test_hub_revision_is_honoured_and_missing_files_named(hub_server, hub_dataset, tmp_path: Path) -> None:
    source = HubSource("speat-org/stimuli", revision="v1", cache_dir=tmp_path, endpoint=hub_server.url)
    resolution = source.resolve([ENGLISH102, KOREAN1], progress=False)
    tagged = hub_server.repos[("dataset", "speat-org/stimuli")].tags["v1"]
    assert set(resolution.files) == {"saa/english102"}
    assert resolution.missing == {"saa/korean1": "no SAA audio file of that name in Hub dataset 'speat-org/stimuli' "
                                                 f"at revision 'v1' (commit {tagged})"}


def test_hub_endpoint_comes_from_hf_endpoint(hub_server, hub_dataset, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub_server.url)
    source = resolve_source("speat-org/stimuli@v1")
    source.cache_dir = tmp_path
    assert set(source.resolve([ENGLISH102], progress=False).files) == {"saa/english102"}
    assert hub_server.count("GET", "/api/datasets/speat-org/stimuli/revision/v1") == 1


def test_hub_kaggle_layout_is_checked_like_a_local_copy(hub_server, tmp_path: Path, make_audio) -> None:
    hub_server.create_repo("someone/saa-kaggle", repo_type="dataset")
    kaggle = tmp_path / "kaggle"
    write_kaggle(kaggle, [kaggle_row("english102", 65), kaggle_row("korean1", 238, "True")])
    hub_server.commit("someone/saa-kaggle", {"speakers_all.csv": (kaggle / "speakers_all.csv").read_bytes(),
                                             "recordings/english102.mp3": make_audio("mp3")}, repo_type="dataset")
    source = HubSource("someone/saa-kaggle", cache_dir=tmp_path / "hub", endpoint=hub_server.url)
    resolution = source.resolve([ENGLISH102, KOREAN1], progress=False)
    assert set(resolution.files) == {"saa/english102"}
    assert resolution.missing["saa/korean1"].startswith("marked file_missing? in ")


def test_hub_errors_name_the_repository(hub_server, hub_dataset, tmp_path: Path) -> None:
    with pytest.raises(StimulusError, match=r"Hub dataset 'speat-org/nothing' was not found on http://127\.0\.0\.1"):
        HubSource("speat-org/nothing", cache_dir=tmp_path, endpoint=hub_server.url).resolve([ENGLISH102])
    with pytest.raises(StimulusError, match=r"Hub dataset 'speat-org/stimuli' at revision 'v9': the revision does "
                                            r"not exist"):
        HubSource("speat-org/stimuli", revision="v9", cache_dir=tmp_path, endpoint=hub_server.url).resolve([CLIP])
    with pytest.raises(StimulusError, match=r"Hub dataset id 'not-a-repo' is not of the form owner/name"):
        HubSource("not-a-repo")


def test_resolve_source_maps_each_kind_of_spec(tmp_path: Path) -> None:
    assert isinstance(resolve_source("demo"), DemoSource)
    download = resolve_source("speat", cache_dir=tmp_path)
    assert isinstance(download, DownloadSource) and download.cache_dir == tmp_path
    assert isinstance(resolve_source(tmp_path), LocalDirectorySource)
    hub = resolve_source("hf://datasets/org/name@refs/pr/1")
    assert isinstance(hub, HubSource) and (hub.repo_id, hub.revision) == ("org/name", "refs/pr/1")
    assert resolve_source(hub) is hub
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "name").mkdir()
    assert isinstance(resolve_source(str(tmp_path / "org" / "name")), LocalDirectorySource)


def test_resolve_source_refuses_what_it_cannot_use(tmp_path: Path) -> None:
    (tmp_path / "file.mp3").write_bytes(b"ID3")
    with pytest.raises(StimulusError, match=r"stimulus source '.*file\.mp3' is a file; give the directory"):
        resolve_source(str(tmp_path / "file.mp3"))
    with pytest.raises(StimulusError, match=r"stimulus source './missing/dir' is neither 'demo', 'speat', an existing "
                                            r"directory nor a Hub dataset id"):
        resolve_source("./missing/dir")
    with pytest.raises(StimulusError, match=r"stimulus source 'just words' is neither"):
        resolve_source("just words")


def test_docstring_examples_run() -> None:
    assert doctest.testmod(sources, raise_on_error=False).failed == 0
