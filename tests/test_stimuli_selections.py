"""Tests of speat_metric.stimuli.selections: the packaged selections and the test records built from them.

Expected group contents are recomputed here from the CSV files with the csv module, independently of the code.
"""

from __future__ import annotations

import csv
import doctest
import hashlib
import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from speat_metric.stimuli import selections
from speat_metric.stimuli.battery import get_speat_test
from speat_metric.stimuli.errors import StimulusError
from speat_metric.stimuli.selections import (
    MESS_FILE_PATTERN,
    SELECTIONS_DIR,
    SpeatTestSpec,
    StimulusGroup,
    attribute_groups,
    demo_speat_test,
    mess_clips,
    read_csv_rows,
    saa_speakers,
    selection_versions,
    speat_tests,
)


def rows(file_name: str) -> list[dict[str, str]]:
    with open(SELECTIONS_DIR / file_name, newline="") as file:
        return list(csv.DictReader(file))


def ids(file_name: str, keep) -> set[str]:
    return {f"saa/{row['name']}" for row in rows(file_name) if keep(row)}


@pytest.mark.parametrize(("name", "size", "x_name", "y_name"), [
    ("gender", 60, "female", "male"), ("age", 58, "young", "old"), ("native", 59, "us", "korean"),
])
def test_named_tests_have_the_study_group_sizes_and_names(name: str, size: int, x_name: str, y_name: str) -> None:
    spec = get_speat_test(name)
    assert spec.sizes == {"X": size, "Y": size, "A": 60, "B": 60}
    assert (spec.x.name, spec.y.name, spec.a.name, spec.b.name) == (x_name, y_name, "pleasant", "unpleasant")
    assert [group.role for group in spec.groups] == ["X", "Y", "A", "B"]


def test_target_groups_match_the_selection_files() -> None:
    assert set(get_speat_test("gender").x.stimulus_ids) == ids(selections.GENDER_FILE, lambda r: r["sex"] == "female")
    assert set(get_speat_test("gender").y.stimulus_ids) == ids(selections.GENDER_FILE, lambda r: r["sex"] == "male")
    assert set(get_speat_test("age").x.stimulus_ids) == ids(selections.AGE_FILE, lambda r: r["age_rank"] == "low_age")
    assert set(get_speat_test("age").y.stimulus_ids) == ids(selections.AGE_FILE, lambda r: r["age_rank"] == "high_age")
    assert set(get_speat_test("native").x.stimulus_ids) == ids(selections.NATIVE_FILE,
                                                               lambda r: r["native_language"] == "english")
    assert set(get_speat_test("native").y.stimulus_ids) == ids(selections.NATIVE_FILE,
                                                               lambda r: r["native_language"] == "korean")


@pytest.mark.parametrize("name", ["gender", "age", "native"])
def test_no_stimulus_is_in_two_groups_of_a_test(name: str) -> None:
    spec = get_speat_test(name)
    groups = [set(group.stimulus_ids) for group in spec.groups]
    assert all(len(group) == len(spec.groups[i]) for i, group in enumerate(groups))  # no duplicates within
    for i in range(4):
        for j in range(i + 1, 4):
            assert not groups[i] & groups[j], (spec.groups[i].role, spec.groups[j].role)


@pytest.mark.parametrize(("name", "file_name"), [("gender", selections.GENDER_FILE),
                                                 ("native", selections.NATIVE_FILE)])
def test_pairs_join_x_and_y_one_to_one_as_the_pair_ids_say(name: str, file_name: str) -> None:
    spec = get_speat_test(name)
    by_pair: dict[str, set[str]] = defaultdict(set)
    for row in rows(file_name):
        by_pair[row["pair_id"]].add(f"saa/{row['name']}")
    assert {frozenset(pair) for pair in spec.pairs} == {frozenset(members) for members in by_pair.values()}
    assert sorted(x for x, _ in spec.pairs) == sorted(spec.x.stimulus_ids)  # every X exactly once
    assert sorted(y for _, y in spec.pairs) == sorted(spec.y.stimulus_ids)  # every Y exactly once
    assert spec.pair_ids[spec.pairs[3][0]] == spec.pair_ids[spec.pairs[3][1]] == 3


def test_gender_pairs_share_their_age_and_native_groups_match_in_sex_and_mean_age() -> None:
    speakers = saa_speakers()
    for x_id, y_id in get_speat_test("gender").pairs:
        x, y = speakers[x_id[4:]], speakers[y_id[4:]]
        assert (x.sex, y.sex, x.age) == ("female", "male", y.age)
    native = get_speat_test("native")
    us = [speakers[s[4:]] for s in native.x.stimulus_ids]
    korean = [speakers[s[4:]] for s in native.y.stimulus_ids]
    # matched as groups: same sex counts, close mean ages (the pairs themselves may differ in sex and age)
    assert Counter(s.sex for s in us) == Counter(s.sex for s in korean)
    assert abs(sum(s.age for s in us) / len(us) - sum(s.age for s in korean) / len(korean)) < 1.0
    assert {s.native_language for s in us} == {"english"} and {s.native_language for s in korean} == {"korean"}


def test_age_groups_span_the_documented_ages_with_29_women_and_29_men_each() -> None:
    speakers = saa_speakers()
    spec = get_speat_test("age")
    young = [speakers[s[4:]] for s in spec.x.stimulus_ids]
    old = [speakers[s[4:]] for s in spec.y.stimulus_ids]
    assert 6 <= min(s.age for s in young) and max(s.age for s in young) <= 19
    assert 57 <= min(s.age for s in old) and max(s.age for s in old) <= 93
    assert Counter(s.sex for s in young) == Counter(s.sex for s in old) == {"female": 29, "male": 29}
    assert spec.pairs == ()


def test_speaker_metadata_comes_from_the_selection_rows() -> None:
    row = rows(selections.NATIVE_FILE)[0]
    speaker = saa_speakers()[row["name"]]
    assert (speaker.speaker_id, speaker.age, speaker.sex, speaker.birthplace, speaker.native_language) == (
        int(row["id"]), float(row["age"]), row["sex"], row["birth_place"], row["native_language"])
    assert speaker.stimulus_id == f"saa/{row['name']}" and speaker.file_name == f"{row['name']}.mp3"
    assert len(saa_speakers()) == len({r["name"] for f in selections.SAA_FILES for r in rows(f)})


def test_all_1800_ratings_are_packaged_with_well_formed_codes() -> None:
    clips = mess_clips()
    assert len(clips) == 1800
    assert all(MESS_FILE_PATTERN.match(clip.file_name) for clip in clips.values())
    assert Counter(clip.talker for clip in clips.values()) == dict.fromkeys(["F1", "F2", "F3", "M1", "M2", "M3"], 300)
    clip = clips["AF1M24"]
    assert (clip.emotion_name, clip.cue_name, clip.talker, clip.stimulus_id) == ("angry", "Michael", "F1",
                                                                                 "mess/AF1M24")


def test_attributes_are_each_talkers_ten_highest_and_ten_lowest_valence_clips() -> None:
    pleasant, unpleasant = attribute_groups()
    assert (len(pleasant), len(unpleasant)) == (60, 60)
    ratings = defaultdict(list)
    for row in rows(selections.RATINGS_FILE):
        ratings[row["gender"] + row["talker"]].append(float(row["Valence"]))
    valence = {row["code"]: float(row["Valence"]) for row in rows(selections.RATINGS_FILE)}
    for talker, values in ratings.items():
        chosen_a = sorted(valence[s[5:]] for s in pleasant.stimulus_ids if s[6:8] == talker)
        chosen_b = sorted(valence[s[5:]] for s in unpleasant.stimulus_ids if s[6:8] == talker)
        # compare valence values, not codes: one tie at a cut-off makes the codes ambiguous, the values are not
        assert chosen_a == sorted(values)[-10:], talker
        assert chosen_b == sorted(values)[:10], talker


def test_selection_versions_pin_the_packaged_files() -> None:
    versions = selection_versions()
    for file_name in selections.SELECTION_FILES:
        content = (SELECTIONS_DIR / file_name).read_bytes()
        assert versions[file_name] == "sha256:" + hashlib.sha256(content).hexdigest()
    assert versions["selections"] == selections.SELECTIONS_VERSION


def test_packaged_selections_are_the_shared_study_files(shared_dir: Path) -> None:
    for file_name in selections.SELECTION_FILES:
        assert (SELECTIONS_DIR / file_name).read_bytes() == (shared_dir / "stimuli" / file_name).read_bytes(), file_name


def test_unknown_test_name_is_refused_with_the_valid_names() -> None:
    with pytest.raises(StimulusError, match=r"unknown SpEAT test 'race': choose one of race-coraal-buckeye, "
                                            r"disability-torgo, .*gender.*native.*age.*accent-romero-rivas"):
        get_speat_test("race")


def test_every_named_test_cites_the_selections_and_both_corpora() -> None:
    for spec in speat_tests().values():
        assert [c.key for c in spec.citations] == ["slaughter2023pretrained", "weinberger2011speech",
                                                   "morgan2019categorical"]
        assert "isaacOnline/SpEAT" in spec.citations[0].text


def test_spec_round_trips_through_json() -> None:
    spec = get_speat_test("native")
    again = SpeatTestSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec


def group(role: str, *stimulus_ids: str) -> StimulusGroup:
    return StimulusGroup(role, role.lower(), stimulus_ids)


def make_spec(**changes) -> SpeatTestSpec:
    fields = dict(name="t", description="", x=group("X", "x1", "x2"), y=group("Y", "y1", "y2"),
                  a=group("A", "a1", "a2"), b=group("B", "b1", "b2"))
    fields.update(changes)
    return SpeatTestSpec(**fields)


def test_spec_refuses_a_stimulus_in_two_groups() -> None:
    with pytest.raises(StimulusError, match=r"stimulus 'x1' is in both group X and group B"):
        make_spec(b=group("B", "b1", "x1"))


def test_spec_refuses_groups_smaller_than_two() -> None:
    with pytest.raises(StimulusError, match=r"group A \('a'\) has 1 stimuli; SpEAT needs at least 2"):
        make_spec(a=group("A", "a1"))


def test_spec_refuses_a_group_in_the_wrong_slot_and_duplicates() -> None:
    with pytest.raises(StimulusError, match=r"the group in slot Y has role 'X'"):
        make_spec(y=group("X", "y1", "y2"))
    with pytest.raises(StimulusError, match=r"group X lists \['x1'\] more than once"):
        make_spec(x=group("X", "x1", "x1", "x2"))


def test_spec_refuses_pairs_that_do_not_join_x_with_y_once() -> None:
    with pytest.raises(StimulusError, match=r"pair \('x1', 'a1'\) must join a stimulus of X"):
        make_spec(pairs=(("x1", "a1"),))
    with pytest.raises(StimulusError, match=r"a stimulus appears in more than one pair"):
        make_spec(pairs=(("x1", "y1"), ("x1", "y2")))


def test_from_files_names_stimuli_after_their_files(tmp_path: Path) -> None:
    paths = {}
    for name in ["w1", "w2", "m1", "m2", "p1", "p2", "u1", "u2"]:
        paths[name] = tmp_path / f"{name}.wav"
        paths[name].write_bytes(b"RIFF")
    spec = SpeatTestSpec.from_files(
        "mine", x=[paths["w1"], paths["w2"]], y={"men/1": paths["m1"], "men/2": str(paths["m2"])},
        a=[paths["p1"], paths["p2"]], b=[paths["u1"], paths["u2"]],
        group_names=("women", "men", "pleasant", "unpleasant"), pairs=[("custom/w1", "men/1")])
    assert spec.x.stimulus_ids == ("custom/w1", "custom/w2") and spec.y.stimulus_ids == ("men/1", "men/2")
    assert dict(spec.files)["men/2"] == str(paths["m2"].resolve())
    assert spec.pair_ids == {"custom/w1": 0, "men/1": 0}
    assert SpeatTestSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_from_files_without_attributes_takes_the_study_attributes(tmp_path: Path) -> None:
    for name in ["w1", "w2", "m1", "m2"]:
        (tmp_path / f"{name}.wav").write_bytes(b"RIFF")
    spec = SpeatTestSpec.from_files("voices", x=[tmp_path / "w1.wav", tmp_path / "w2.wav"],
                                    y=[tmp_path / "m1.wav", tmp_path / "m2.wav"], group_names=("w", "m", "", ""))
    assert (spec.a, spec.b) == attribute_groups()
    assert set(dict(spec.files)) == {"custom/w1", "custom/w2", "custom/m1", "custom/m2"}
    assert [c.key for c in spec.citations] == ["slaughter2023pretrained", "morgan2019categorical"]
    with pytest.raises(StimulusError, match=r"test 'half': give both attribute groups a and b, or neither"):
        SpeatTestSpec.from_files("half", x=[tmp_path / "w1.wav"], y=[tmp_path / "m1.wav"], a=[tmp_path / "w2.wav"])


def test_from_files_reports_a_missing_file_and_clashing_stems(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for path in [tmp_path / "a" / "same.wav", tmp_path / "b" / "same.wav", *(tmp_path / f"{n}.wav" for n in "cdefgh")]:
        path.write_bytes(b"RIFF")
    with pytest.raises(StimulusError, match=r"group Y: audio file '.*nowhere\.wav' does not exist"):
        SpeatTestSpec.from_files("t", x=[tmp_path / "c.wav", tmp_path / "d.wav"], y=[tmp_path / "nowhere.wav"],
                                 a=[], b=[])
    with pytest.raises(StimulusError, match=r"would both get the id 'custom/same'; give group Y as a mapping"):
        SpeatTestSpec.from_files("t", x=[tmp_path / "a" / "same.wav", tmp_path / "c.wav"],
                                 y=[tmp_path / "b" / "same.wav", tmp_path / "d.wav"], a=[], b=[])
    # the advice works: group Y as a mapping of unique ids
    spec = SpeatTestSpec.from_files("t", x=[tmp_path / "a" / "same.wav", tmp_path / "c.wav"],
                                    y={"y-same": tmp_path / "b" / "same.wav", "y-d": tmp_path / "d.wav"},
                                    a=[tmp_path / "e.wav", tmp_path / "f.wav"],
                                    b=[tmp_path / "g.wav", tmp_path / "h.wav"])
    assert spec.y.stimulus_ids == ("y-same", "y-d") and spec.x.stimulus_ids == ("custom/same", "custom/c")
    with pytest.raises(StimulusError, match=r"group_names needs 4 names \(X, Y, A, B\), got \['x', 'y'\]"):
        SpeatTestSpec.from_files("t", x=[], y=[], a=[], b=[], group_names=("x", "y"))


def test_read_csv_rows_names_the_expected_and_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "meta.csv"
    path.write_text("name,age\nenglish1,30\n")
    with pytest.raises(StimulusError, match=r"meta\.csv does not have the columns of the test layout: expected "
                                            r"name, sex, age; missing sex \(found name, age\)"):
        read_csv_rows(path, ("name", "sex", "age"), layout="the test layout")


def test_demo_tests_take_targets_of_their_test_and_the_shared_attributes(demo_dir: Path) -> None:
    spec = demo_speat_test("age", demo_dir=demo_dir)
    assert spec.synthetic and "NOT A BIAS MEASUREMENT" in spec.description
    assert spec.x.stimulus_ids == ("demo-age-young-01", "demo-age-young-02", "demo-age-young-03")
    assert spec.b.name == "unpleasant" and spec.b.stimulus_ids[0] == "demo-attributes-unpleasant-01"
    assert dict(spec.files)["demo-age-old-02"] == str(demo_dir.resolve() / "audio" / "demo-age-old-02.flac")
    assert demo_speat_test("gender", demo_dir=demo_dir).a == spec.a


def test_demo_set_errors_name_the_problem(tmp_path: Path, demo_dir: Path) -> None:
    with pytest.raises(StimulusError, match=r"the demo set is not installed \(.*metadata\.csv is missing\)"):
        demo_speat_test("gender", demo_dir=tmp_path)
    with pytest.raises(StimulusError, match=r"unknown SpEAT test 'accent': the demo set has gender, age, native"):
        demo_speat_test("accent", demo_dir=demo_dir)
    text = (demo_dir / "metadata.csv").read_text().replace(",gender,X,female,", ",gender,X,women,", 1)
    (demo_dir / "metadata.csv").write_text(text)
    with pytest.raises(StimulusError, match=r"role X of test 'gender' must have exactly one group, found "
                                            r"\['female', 'women'\]"):
        demo_speat_test("gender", demo_dir=demo_dir)


def test_docstring_examples_run() -> None:
    assert doctest.testmod(selections, raise_on_error=False).failed == 0
