"""Custom tests from a JSON file: groups as lists or id mappings, group names as a list or mapping, pairs by id or
by path, and errors that name the file and the entry."""

import json
from pathlib import Path

import pytest

from speat_metric.stimuli import StimulusError, load_custom_test, load_speat_test


@pytest.fixture
def folder(tmp_path: Path, make_audio) -> Path:
    for group in ("us", "kr", "good", "bad"):
        (tmp_path / group).mkdir()
        for index, name in enumerate(("ann", "bob", "cy")):
            (tmp_path / group / f"{name}.wav").write_bytes(make_audio("wav", frequency=200 + 50 * index + len(group)))
    return tmp_path


def write(folder: Path, **definition) -> Path:
    path = folder / "test.json"
    path.write_text(json.dumps({"name": "accent", **definition}))
    return path


def files(group: str) -> list[str]:
    return [f"{group}/{name}.wav" for name in ("ann", "bob", "cy")]


def test_lists_get_path_ids_and_the_default_group_names(folder):
    spec = load_custom_test(write(folder, x=files("us"), y={"kr-ann": "kr/ann.wav", "kr-bob": "kr/bob.wav"},
                                  a=files("good"), b=files("bad")))
    assert spec.x.stimulus_ids == ("custom/us/ann", "custom/us/bob", "custom/us/cy")  # same names in other folders
    assert spec.y.stimulus_ids == ("kr-ann", "kr-bob")
    assert [group.name for group in spec.groups] == ["X", "Y", "A", "B"]


@pytest.mark.parametrize("names", [["US", "Korean", "nice", "nasty"],
                                   {"x": "US", "y": "Korean", "a": "nice", "b": "nasty"},
                                   {"X": "US", "Y": "Korean", "A": "nice", "B": "nasty"}])
def test_group_names_as_a_list_or_a_mapping(folder, names):
    spec = load_custom_test(write(folder, x=files("us"), y=files("kr"), a=files("good"), b=files("bad"),
                                  group_names=names))
    assert [group.name for group in spec.groups] == ["US", "Korean", "nice", "nasty"]


def test_a_partial_mapping_keeps_the_defaults_for_the_rest(folder):
    spec = load_custom_test(write(folder, x=files("us"), y=files("kr"), a=files("good"), b=files("bad"),
                                  group_names={"y": "Korean", "x": "US"}))
    assert [group.name for group in spec.groups] == ["US", "Korean", "A", "B"]


def test_pairs_by_path_or_by_id_resolve_to_the_same_stimuli(folder):
    korean = {"k1": "kr/ann.wav", "k2": "kr/bob.wav", "k3": "kr/cy.wav"}
    by_path = load_custom_test(write(folder, x=files("us"), y=korean,
                                     a=files("good"), b=files("bad"),
                                     pairs=[["us/ann.wav", "kr/bob.wav"], ["us/bob.wav", "kr/ann.wav"],
                                            ["us/cy.wav", "kr/cy.wav"]]))
    by_id = load_custom_test(write(folder, x=files("us"), y=korean,
                                   a=files("good"), b=files("bad"),
                                   pairs=[["custom/us/ann", "k2"], ["custom/us/bob", "k1"], ["custom/us/cy", "k3"]]))
    assert by_path.pairs == by_id.pairs == (("custom/us/ann", "k2"), ("custom/us/bob", "k1"), ("custom/us/cy", "k3"))
    dataset_set = load_speat_test(by_path, progress=False)
    dataset = dataset_set.to_dataset()
    pair_of = {row["stimulus_id"]: row["pair_id"] for row in dataset}
    assert pair_of["custom/us/ann"] == pair_of["k2"] != pair_of["custom/us/bob"]


@pytest.mark.parametrize("definition,message", [
    ({"x": ["us/ann.wav"], "y": files("kr"), "group_names": {"x": "US", "z": "?"}},
     r"group_names has unknown key\(s\) z; use x, y, a, b"),
    ({"x": files("us"), "y": files("kr"), "group_names": ["a", "b"]}, r"group_names must be a list of 4 names"),
    ({"x": files("us"), "y": files("kr"), "pairs": [["us/ann.wav", "kr/nobody.wav"]]},
     r"pair member 'kr/nobody.wav' is neither the id nor the audio path of a stimulus of group Y"),
    ({"x": files("us"), "y": files("kr"), "colour": "red"}, r"unknown key\(s\) colour"),
    ({"x": files("us")}, r"needs 'y'"),
    ({"x": "us/ann.wav", "y": files("kr")}, r"'x' must be a list of audio paths or a mapping"),
])
def test_bad_definitions_name_the_file_and_the_entry(folder, definition, message):
    path = write(folder, **definition)
    with pytest.raises(StimulusError, match=rf"custom test file '{path}'.*{message}"):
        load_custom_test(path)


def test_clashing_ids_get_advice_that_works(folder, make_audio):
    (folder / "kr" / "ann.flac").write_bytes(make_audio("flac", frequency=777))
    clashing = dict(x=files("us"), y=["kr/ann.wav", "kr/ann.flac", "kr/bob.wav"], a=files("good"), b=files("bad"))
    with pytest.raises(StimulusError, match=r"'kr/ann.wav' and 'kr/ann.flac' in 'y' would both get the id "
                                            r"'custom/kr/ann'; "
                                            r"give 'y' as a mapping of unique stimulus ids to paths instead"):
        load_custom_test(write(folder, **clashing))
    advice = {"y": {"kr-ann-wav": "kr/ann.wav", "kr-ann-flac": "kr/ann.flac", "kr-bob": "kr/bob.wav"}}
    fixed = load_custom_test(write(folder, **{**clashing, **advice}))
    assert fixed.y.stimulus_ids == ("kr-ann-wav", "kr-ann-flac", "kr-bob")
    assert len(load_speat_test(fixed, progress=False)) == 12


def test_an_empty_audio_file_says_it_is_empty_without_download_advice(folder):
    (folder / "us" / "cy.wav").write_bytes(b"")
    spec = load_custom_test(write(folder, x=files("us"), y=files("kr"), a=files("good"), b=files("bad")))
    with pytest.raises(StimulusError,
                       match=r"^custom/us/cy \(.*cy\.wav\): the file is empty \(0 bytes\); replace it") as error:
        load_speat_test(spec, progress=False)
    assert "download" not in str(error.value)


def test_a_missing_file_is_named(folder):
    with pytest.raises(FileNotFoundError, match=r"custom test file '.*nothing.json' does not exist"):
        load_custom_test(folder / "nothing.json")
