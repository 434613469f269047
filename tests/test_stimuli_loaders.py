"""Tests of speat_metric.stimuli.loaders: datasets built from every kind of source, missing and bad stimuli, and
the provenance in DatasetInfo. Expected values come from the selection CSVs and from hashing the files here."""

from __future__ import annotations

import csv
import doctest
import hashlib
import io
import sys
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import datasets
import pytest
from http_servers import HubServer, StaticFileServer, add_zenodo_record

from speat_metric.stimuli import loaders
from speat_metric.stimuli.battery import get_speat_test
from speat_metric.stimuli.download import RetryPolicy
from speat_metric.stimuli.errors import MissingStimuliError, StimulusError
from speat_metric.stimuli.loaders import (
    STIMULUS_FEATURES,
    load_accent_archive,
    load_morgan,
    load_speat_test,
    stimulus_provenance,
)
from speat_metric.stimuli.selections import (
    SELECTIONS_DIR,
    SpeatTestSpec,
    attribute_groups,
    demo_available,
    selection_versions,
)
from speat_metric.stimuli.sources import DemoSource, DownloadSource, HubSource

ALL_IDS = sorted({s for name in ("gender", "age", "native") for s in get_speat_test(name).stimulus_ids})


@pytest.fixture(scope="module")
def full_copy(tmp_path_factory: pytest.TempPathFactory, write_stimuli) -> Path:
    """Every stimulus of the three tests in the cache layout (shared by the tests that only read it)."""
    root = tmp_path_factory.mktemp("full-copy")
    write_stimuli(root, ALL_IDS)
    return root


@pytest.fixture
def own_copy(tmp_path: Path, write_stimuli) -> Callable[[str], Path]:
    """A fresh copy of one test's stimuli that the test may damage."""

    def make(name: str) -> Path:
        write_stimuli(tmp_path / "copy", get_speat_test(name).stimulus_ids)
        return tmp_path / "copy"

    return make


def csv_rows(file_name: str) -> dict[str, dict[str, str]]:
    with open(SELECTIONS_DIR / file_name, newline="") as file:
        return {row.get("name") or row["code"]: row for row in csv.DictReader(file)}


def test_a_test_from_a_local_copy_has_every_role_with_metadata_and_checksums(full_copy: Path) -> None:
    dataset_set = load_speat_test("gender", full_copy, progress=False)
    dataset = dataset_set.to_dataset()
    spec = get_speat_test("gender")
    assert dataset.features == STIMULUS_FEATURES
    assert dataset["stimulus_id"] == list(spec.stimulus_ids)
    assert Counter(zip(dataset["role"], dataset["group"])) == {("X", "female"): 60, ("Y", "male"): 60,
                                                               ("A", "pleasant"): 60, ("B", "unpleasant"): 60}
    rows = {row["stimulus_id"]: row for row in dataset}
    speaker = csv_rows("saa_male_female_clip_info.csv")["english102"]
    row = rows["saa/english102"]
    assert (row["speaker_id"], row["age"], row["sex"], row["birthplace"], row["native_language"]) == (
        speaker["id"], float(speaker["age"]), speaker["sex"], speaker["birth_place"], speaker["native_language"])
    assert row["text"].startswith("Please call Stella.") and row["corpus"] == "saa" and row["test"] == "gender"
    clip = rows["mess/" + attribute_groups()[1].stimulus_ids[0][5:]]
    rating = csv_rows("mess_valence_by_code.csv")[clip["name"]]
    assert clip["valence"] == pytest.approx(float(rating["Valence"]), abs=1e-3)
    assert (clip["speaker_id"], clip["role"]) == (rating["gender"] + rating["talker"], "B")
    for row in (rows["saa/english102"], clip):
        content = Path(row["audio"]["path"]).read_bytes()
        assert row["audio"]["bytes"] is None
        assert (row["sha256"], row["num_bytes"]) == (hashlib.sha256(content).hexdigest(), len(content))
    for x_id, y_id in spec.pairs:
        assert rows[x_id]["pair_id"] == rows[y_id]["pair_id"] is not None
    assert {rows[s]["pair_id"] for s in spec.a.stimulus_ids} == {None}
    assert "torchcodec" not in sys.modules


def test_the_dataset_info_carries_citation_checksums_and_provenance(full_copy: Path) -> None:
    dataset_set = load_speat_test("native", full_copy, progress=False)
    dataset = dataset_set.to_dataset()
    info = dataset.info
    assert info.config_name == "native" and "slaughter2023pretrained" in info.citation
    assert "morgan2019categorical" in info.citation and "CC BY-NC-SA 2.0" in info.license
    path = dataset[0]["audio"]["path"]
    assert info.download_checksums[path] == {"num_bytes": dataset[0]["num_bytes"],
                                             "checksum": f"sha256:{dataset[0]['sha256']}"}
    provenance = stimulus_provenance(dataset_set)
    assert provenance["test"] == "native" and provenance["synthetic"] is False
    assert provenance["source"] == {"kind": "local", "path": str(full_copy.resolve())}
    assert provenance["selection_versions"] == selection_versions()
    assert (provenance["requested"], provenance["loaded"], provenance["dropped_ids"]) == (238, 238, [])
    assert provenance["group_sizes"] == {"X": 59, "Y": 59, "A": 60, "B": 60}


def test_missing_stimuli_raise_an_error_listing_them_and_how_to_get_them(own_copy) -> None:
    copy = own_copy("age")
    (copy / "saa" / "english104.mp3").unlink()
    (copy / "mess" / f"{attribute_groups()[0].stimulus_ids[0][5:]}_SCR.wav").unlink()
    with pytest.raises(MissingStimuliError, match=r"(?s)2 stimuli of the 'age' test are missing from local source.*"
                                                  r"no SAA audio file of that name in .*: saa/english104.*"
                                                  r"speat stimuli download.*--allow-missing") as caught:
        load_speat_test("age", copy, progress=False)
    assert set(caught.value.missing) == {"saa/english104", attribute_groups()[0].stimulus_ids[0]}


def test_allow_missing_drops_and_records_them_and_unpairs_the_partner(own_copy) -> None:
    copy = own_copy("gender")
    x_id, y_id = get_speat_test("gender").pairs[0]
    (copy / "saa" / f"{y_id[4:]}.mp3").unlink()
    dataset_set = load_speat_test("gender", copy, allow_missing=True, progress=False)
    dataset = dataset_set.to_dataset()
    assert len(dataset) == 239 and y_id not in dataset["stimulus_id"]
    partner = dataset[dataset["stimulus_id"].index(x_id)]
    assert partner["pair_id"] is None
    provenance = stimulus_provenance(dataset_set)
    assert provenance["dropped_ids"] == [y_id] and provenance["unpaired_ids"] == [x_id]
    assert provenance["dropped_reasons"][y_id].startswith("no SAA audio file of that name in ")
    assert provenance["group_sizes"]["Y"] == 59
    assert f"Dropped because missing (allow_missing=True): {y_id}." in dataset.info.description


def test_a_group_left_too_small_is_an_error_even_with_allow_missing(own_copy) -> None:
    copy = own_copy("age")
    for stimulus_id in attribute_groups()[1].stimulus_ids[1:]:
        (copy / "mess" / f"{stimulus_id[5:]}_SCR.wav").unlink()
    with pytest.raises(StimulusError, match=r"only 1 stimuli of group B \(unpleasant\) of the 'age' test were found"):
        load_speat_test("age", copy, allow_missing=True, progress=False)


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_broken_audio_file_is_an_error_naming_it_unless_allowed_missing(own_copy, make_audio, damage) -> None:
    copy = own_copy("age")
    attribute = attribute_groups()[0].stimulus_ids[0]
    path = copy / "mess" / f"{attribute[5:]}_SCR.wav"
    whole = make_audio("wav", seconds=1.0)
    path.write_bytes(b"" if damage == "empty" else whole[: len(whole) // 2])
    problem = "the file is empty" if damage == "empty" else "the file is truncated: its data chunk declares"
    with pytest.raises(StimulusError, match=rf"^{attribute} \(.*_SCR\.wav\): {problem}.*--allow-missing"):
        load_speat_test("age", copy, progress=False)
    dataset_set = load_speat_test("age", copy, allow_missing=True, progress=False)
    dataset = dataset_set.to_dataset()
    assert attribute not in dataset["stimulus_id"]
    assert stimulus_provenance(dataset_set)["dropped_reasons"][attribute].startswith(f"unreadable: {problem}")


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def serve_public(server: StaticFileServer, stimulus_audio, ids) -> None:
    """Serve SAA recordings under /soundtracks and the MESS clips in a zip of Zenodo record 3813437."""
    clips = {}
    for stimulus_id in ids:
        corpus, _, name = stimulus_id.partition("/")
        if corpus == "saa":
            server.add_file(f"/soundtracks/{name}.mp3", stimulus_audio(stimulus_id), "audio/mpeg")
        else:
            clips[f"MESS/{name}_SCR.wav"] = stimulus_audio(stimulus_id)
    add_zenodo_record(server, "3813437", {"MESS.zip": zip_of(clips)})


def test_a_test_downloaded_from_the_public_locations(static_server, stimulus_audio, tmp_path: Path) -> None:
    spec = get_speat_test("age")
    serve_public(static_server, stimulus_audio, spec.stimulus_ids)
    source = DownloadSource(cache_dir=tmp_path, saa_base_url=f"{static_server.url}/soundtracks",
                            zenodo_base_url=static_server.url, retry=RetryPolicy(backoff=0))
    dataset_set = load_speat_test("age", source, progress=False)
    dataset = dataset_set.to_dataset()
    assert len(dataset) == 236
    assert all(row["sha256"] == hashlib.sha256(stimulus_audio(row["stimulus_id"])).hexdigest() for row in dataset)
    assert stimulus_provenance(dataset_set)["source"]["saa_base_url"] == f"{static_server.url}/soundtracks"
    static_server.clear_requests()
    again_set = load_speat_test("age", source, progress=False)
    again = again_set.to_dataset()
    assert static_server.count() == 0 and again["sha256"] == dataset["sha256"]


def test_a_404_during_download_names_the_missing_ids(static_server, stimulus_audio, tmp_path: Path) -> None:
    spec = get_speat_test("age")
    serve_public(static_server, stimulus_audio, [s for s in spec.stimulus_ids if s not in ("saa/english104",)])
    source = DownloadSource(cache_dir=tmp_path, saa_base_url=f"{static_server.url}/soundtracks",
                            zenodo_base_url=static_server.url, retry=RetryPolicy(backoff=0))
    with pytest.raises(MissingStimuliError, match=r"1 stimuli of the 'age' test are missing from download source.*"
                                                  r"\n  not available at .* \(HTTP 404\): saa/english104\n"):
        load_speat_test("age", source, progress=False)


def test_a_test_from_a_hub_dataset_records_the_commit(hub_server: HubServer, stimulus_audio, tmp_path: Path) -> None:
    spec = get_speat_test("native")
    hub_server.create_repo("speat-org/stimuli", repo_type="dataset")
    sha = hub_server.commit("speat-org/stimuli", {
        f"{s.partition('/')[0]}/{s[4:] + '.mp3' if s.startswith('saa/') else s[5:] + '_SCR.wav'}": stimulus_audio(s)
        for s in spec.stimulus_ids}, repo_type="dataset")
    source = HubSource("speat-org/stimuli", cache_dir=tmp_path, endpoint=hub_server.url)
    dataset_set = load_speat_test("native", source, progress=False)
    dataset = dataset_set.to_dataset()
    assert len(dataset) == 238
    assert stimulus_provenance(dataset_set)["source"]["commit"] == sha
    row = dataset[5]
    assert row["sha256"] == hashlib.sha256(stimulus_audio(row["stimulus_id"])).hexdigest()


def test_accent_archive_rows_carry_speaker_metadata(tmp_path: Path, write_stimuli, make_audio) -> None:
    write_stimuli(tmp_path, ["saa/english102", "saa/korean1"], flat=True)
    (tmp_path / "spanish7.mp3").write_bytes(make_audio("mp3"))
    dataset_set = load_accent_archive(tmp_path, names=["korean1", "english102", "spanish7"], progress=False)
    dataset = dataset_set.to_dataset()
    assert dataset["stimulus_id"] == ["saa/korean1", "saa/english102", "saa/spanish7"]
    korean = csv_rows("saa_us_korean_clip_info.csv")["korean1"]
    assert (dataset[0]["speaker_id"], dataset[0]["native_language"], dataset[0]["age"]) == (
        korean["id"], "korean", float(korean["age"]))
    assert dataset[2]["speaker_id"] is None and dataset[2]["role"] is None  # outside the selections
    assert stimulus_provenance(dataset_set)["config"] == "accent_archive"


def test_accent_archive_defaults_to_every_selected_recording(full_copy: Path) -> None:
    dataset_set = load_accent_archive(full_copy, progress=False)
    dataset = dataset_set.to_dataset()
    assert sorted(dataset["stimulus_id"]) == [s for s in ALL_IDS if s.startswith("saa/")]


def test_accent_archive_refuses_bad_names_and_the_demo_set(tmp_path: Path) -> None:
    with pytest.raises(StimulusError, match=r"recording names must be file stems like 'english102', got "
                                            r"\['english1\.mp3', 'saa/x'\]"):
        load_accent_archive(tmp_path, names=["english1.mp3", "saa/x"])
    with pytest.raises(StimulusError, match=r"the demo set is synthetic and holds no Speech Accent Archive"):
        load_accent_archive("demo")


def test_morgan_attribute_clips_carry_their_roles(full_copy: Path) -> None:
    pleasant, unpleasant = attribute_groups()
    dataset_set = load_morgan(full_copy, progress=False)
    dataset = dataset_set.to_dataset()
    assert dataset["stimulus_id"] == list(pleasant.stimulus_ids + unpleasant.stimulus_ids)
    assert Counter(dataset["role"]) == {"A": 60, "B": 60} and set(dataset["test"]) == {"attributes"}
    assert {row["emotion"] for row in dataset} <= {"angry", "calm", "happy", "sad"}


def test_morgan_loads_chosen_or_all_clips(full_copy: Path) -> None:
    chosen_set = load_morgan(full_copy, codes=[pleasant_code := attribute_groups()[0].stimulus_ids[0][5:]],
                         progress=False)
    chosen = chosen_set.to_dataset()
    assert chosen["role"] == ["A"] and chosen["name"] == [pleasant_code]
    everything_set = load_morgan(full_copy, codes="all", allow_missing=True, progress=False)
    provenance = stimulus_provenance(everything_set)
    assert (provenance["requested"], provenance["loaded"], len(provenance["dropped_ids"])) == (1800, 120, 1680)


def test_morgan_refuses_unknown_codes(tmp_path: Path) -> None:
    with pytest.raises(StimulusError, match=r"unknown MESS clip codes \['XF1M24'\]"):
        load_morgan(tmp_path, codes=["XF1M24"])
    with pytest.raises(StimulusError, match=r"codes must be 'attributes', 'all' or a list of clip codes, got 'some'"):
        load_morgan(tmp_path, codes="some")


def test_a_custom_test_uses_its_own_files_whatever_the_source(tmp_path: Path, make_audio) -> None:
    files = {}
    for index, name in enumerate(["w1", "w2", "m1", "m2", "p1", "p2", "u1", "u2"]):
        files[name] = tmp_path / f"{name}.flac"
        files[name].write_bytes(make_audio("flac", frequency=300 + 25 * index))
    spec = SpeatTestSpec.from_files("mine", x=[files["w1"], files["w2"]], y=[files["m1"], files["m2"]],
                                    a=[files["p1"], files["p2"]], b=[files["u1"], files["u2"]],
                                    group_names=("women", "men", "pleasant", "unpleasant"))
    dataset_set = load_speat_test(spec, progress=False)  # the default source "speat" is not consulted
    dataset = dataset_set.to_dataset()
    assert dataset["stimulus_id"] == ["custom/w1", "custom/w2", "custom/m1", "custom/m2", "custom/p1", "custom/p2",
                                      "custom/u1", "custom/u2"]
    assert set(dataset["corpus"]) == {"custom"} and dataset["group"][2] == "men"
    assert stimulus_provenance(dataset_set)["source"] == {"kind": "files"}
    files["u2"].unlink()
    with pytest.raises(MissingStimuliError, match=r"audio file does not exist: custom/u2"):
        load_speat_test(spec, progress=False)


def test_a_custom_test_with_the_study_attributes_gets_them_from_the_source(full_copy: Path, tmp_path: Path,
                                                                          make_audio) -> None:
    targets = {}
    for index, name in enumerate(["w1", "w2", "m1", "m2"]):
        targets[name] = tmp_path / f"{name}.mp3"
        targets[name].write_bytes(make_audio("mp3", frequency=330 + 20 * index))
    spec = SpeatTestSpec.from_files("voices", x=[targets["w1"], targets["w2"]], y=[targets["m1"], targets["m2"]])
    dataset_set = load_speat_test(spec, full_copy, progress=False)
    dataset = dataset_set.to_dataset()
    assert Counter(dataset["corpus"]) == {"custom": 4, "mess": 120}
    assert dataset[0]["audio"]["path"] == str(targets["w1"].resolve())
    assert dataset[4]["audio"]["path"].startswith(str(full_copy)) and dataset[4]["role"] == "A"
    assert stimulus_provenance(dataset_set)["source"]["kind"] == "local"


def test_a_demo_format_set_loads_as_a_labelled_synthetic_test(demo_dir: Path) -> None:
    dataset_set = load_speat_test("native", DemoSource(demo_dir), progress=False)
    dataset = dataset_set.to_dataset()
    assert Counter(zip(dataset["role"], dataset["group"])) == {("X", "us"): 3, ("Y", "korean"): 3,
                                                               ("A", "pleasant"): 3, ("B", "unpleasant"): 3}
    assert dataset[0]["speaker_id"] == "espeak-ng en-us+v1" and dataset[0]["text"] == "Please call Stella."
    assert dataset.info.description.startswith("SYNTHETIC PIPELINE CHECK, NOT A BIAS MEASUREMENT")
    provenance = stimulus_provenance(dataset_set)
    assert provenance["synthetic"] is True and provenance["source"]["kind"] == "demo"
    assert set(dataset["corpus"]) == {"demo"}


@pytest.mark.skipif(not demo_available(), reason="the embedded demo set (speat_metric/data/demo) is not generated yet")
@pytest.mark.parametrize("name", ["gender", "age", "native"])
def test_the_embedded_demo_set_loads_offline(name: str) -> None:
    dataset_set = load_speat_test(name, "demo", progress=False)
    dataset = dataset_set.to_dataset()
    sizes = Counter(dataset["role"])
    assert set(sizes) == {"X", "Y", "A", "B"} and min(sizes.values()) >= 12
    assert all(Path(path).is_file() for path in (a["path"] for a in dataset["audio"]))
    assert "NOT A BIAS MEASUREMENT" in dataset.info.description and stimulus_provenance(dataset_set)["synthetic"]


def test_the_provenance_is_typed_and_the_exported_dataset_keeps_its_info(full_copy: Path, tmp_path: Path) -> None:
    """The set carries its provenance as a dataclass (records store its dict); a dataset exported from it keeps its
    citation, licence and checksums through filter, map and save_to_disk, and no JSON hides in its description."""
    stimuli = load_speat_test("age", full_copy, progress=False)
    provenance = stimulus_provenance(stimuli)
    assert provenance == stimuli.provenance.to_dict() and provenance["test"] == "age"
    assert provenance["group_sizes"] == {role: len(stimuli.of_role(role)) for role in "XYAB"}
    dataset = stimuli.to_dataset()
    changed = dataset.filter(lambda row: row["role"] in ("X", "A")).map(lambda row: {"n": len(row["name"])})
    changed.save_to_disk(str(tmp_path / "saved"))
    saved = datasets.load_from_disk(str(tmp_path / "saved"))
    for info in (changed.info, saved.info):
        assert info.config_name == "age" and info.citation == dataset.info.citation
        assert info.download_checksums == dataset.info.download_checksums
        assert "{" not in info.description
    with pytest.raises(StimulusError, match=r"an exported datasets.Dataset carries no provenance.*\.provenance"):
        stimulus_provenance(saved)


def test_bad_test_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StimulusError, match=r"unknown SpEAT test 'race'"):
        load_speat_test("race", tmp_path)
    with pytest.raises(StimulusError, match=r"test must be a test name or a SpeatTestSpec, got int"):
        load_speat_test(3, tmp_path)


def test_docstring_examples_run() -> None:
    assert doctest.testmod(loaders, raise_on_error=False).failed == 0
