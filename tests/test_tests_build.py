"""`speat tests build`: tests chosen from a corpus with speaker metadata, written, evaluated and rebuilt."""

import argparse
import csv
import json

import numpy as np
import pytest
import soundfile
from real_speech import SKIP_REASON, real_speech_available, write_common_voice_table, write_emotion_table

from speat_metric import tests_cli
from speat_metric.cli import main
from speat_metric.results import load_records
from speat_metric.stimuli import StimulusError, load_custom_test
from speat_metric.stimuli.builder import (
    BuildSpec,
    GroupDefinition,
    build_tests,
    match_distance,
)

needs_real_speech = pytest.mark.skipif(not real_speech_available(), reason=SKIP_REASON)
COLUMNS = ("client_id", "path", "sentence", "age", "gender", "accents", "locale")


def run_tests_command(*arguments):
    """``speat tests ...`` through its own parser (the coordinator wires it into speat_metric/cli.py)."""
    parser = argparse.ArgumentParser(prog="speat")
    tests_cli.add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args([str(argument) for argument in arguments])
    return args.handler(args)


def write_corpus(folder, speakers, clips_per_speaker=2, seconds=(1.0, 0.2)):
    """A Common Voice-shaped table over short noise clips: `speakers` maps client_id -> metadata columns; each
    speaker's clips last `seconds` in turn."""
    clips = folder / "clips"
    clips.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for speaker, columns in speakers.items():
        for index in range(clips_per_speaker):
            name = f"{speaker}_{index}.wav"
            length = seconds[index % len(seconds)]
            soundfile.write(clips / name, rng.normal(scale=0.1, size=int(16_000 * length)), 16_000)
            rows.append({"client_id": speaker, "path": name, "sentence": "s", **columns})
    with open(folder / "validated.tsv", "w", newline="") as file:
        writer = csv.DictWriter(file, COLUMNS, delimiter="\t", lineterminator="\n", restval="")
        writer.writeheader()
        writer.writerows(rows)
    return folder / "validated.tsv"


def write_attributes(folder, count=6):
    rng = np.random.default_rng(1)
    rows = []
    for index, emotion in enumerate(["happy", "sad", "neutral", "angry", "joy", "fear"] * count):
        name = f"emo_{index}.wav"
        soundfile.write(folder / name, rng.normal(scale=0.1, size=8_000), 16_000)
        rows.append({"path": name, "emotion": emotion, "valence": str(index % 13)})
    with open(folder / "emotions.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, ("path", "emotion", "valence"), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return folder / "emotions.csv"


def speakers(count, **columns):
    return {f"{'_'.join(columns.values())}{index}": dict(columns) for index in range(count)}


def spec(corpus, **changes):
    values = {"corpus": str(corpus), "x": GroupDefinition.parse("gender=female"),
              "y": GroupDefinition.parse("gender=male"), "per_group": 3, "name": "t"}
    return BuildSpec(**{**values, **changes})


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "cv", {**speakers(5, gender="female", age="twenties"),
                                          **speakers(4, gender="male", age="twenties"),
                                          **speakers(2, gender="male", age="sixties")})


def test_group_definitions_parse_and_a_malformed_one_says_how_to_write_it():
    definition = GroupDefinition.parse("age=teens,twenties;gender=female")
    assert definition.holds({"age": "Twenties", "gender": "female"}) and not definition.holds({"age": "forties"})
    assert GroupDefinition.parse("accents=France").holds({"accents": "Canada|France"})
    with pytest.raises(StimulusError, match=r"--x 'female': write COLUMN=VALUE"):
        GroupDefinition.parse("female", "--x")


def test_one_clip_per_speaker_n_per_group_and_the_seed_decides(corpus):
    first = build_tests(spec(corpus, seed=1)).tests[0].selection
    for clips, gender in ((first.x, "female"), (first.y, "male")):
        assert len(clips) == 3 and len({clip.speaker for clip in clips}) == 3
        assert all(clip.columns["gender"] == gender for clip in clips)
    assert build_tests(spec(corpus, seed=1)).tests[0].selection == first
    chosen = {seed: [clip.stimulus_id for clip in build_tests(spec(corpus, seed=seed)).tests[0].selection.x]
              for seed in range(6)}
    assert len({tuple(ids) for ids in chosen.values()}) > 1


def test_a_group_too_small_says_how_many_speakers_were_found(corpus):
    with pytest.raises(StimulusError, match=r"group X \(gender=female\) has 5 speaker\(s\) after filtering \(any "
                       r"locale, one clip per speaker\); --per-group asks for 6.*'gender' has: female, male"):
        build_tests(spec(corpus, per_group=6))


def test_durations_come_from_the_headers_and_filter_clips(corpus):
    selection = build_tests(spec(corpus, min_seconds=0.5)).tests[0].selection
    assert all(clip.seconds() >= 0.5 for clip in selection.x + selection.y)
    with pytest.raises(StimulusError, match=r"has 0 speaker\(s\) after filtering \(any locale, 0-0.1 s"):
        build_tests(spec(corpus, max_seconds=0.1))


def test_exact_matching_pairs_equal_values_and_nearest_takes_the_closest_band(tmp_path):
    corpus = write_corpus(tmp_path / "cv", {**speakers(2, gender="female", age="twenties"),
                                            **speakers(2, gender="female", age="sixties"),
                                            **speakers(2, gender="male", age="thirties"),
                                            **speakers(2, gender="male", age="sixties")})
    exact = build_tests(spec(corpus, per_group=2, match=("age",))).tests[0].selection
    assert [(x.columns["age"], y.columns["age"]) for x, y in zip(exact.x, exact.y)] == [("sixties", "sixties")] * 2
    assert exact.pairs == tuple(zip((c.stimulus_id for c in exact.x), (c.stimulus_id for c in exact.y)))
    with pytest.raises(StimulusError, match=r"only 2 X-Y pair\(s\) match exactly on age"):
        build_tests(spec(corpus, per_group=3, match=("age",)))
    nearest = build_tests(spec(corpus, per_group=4, match=("age",), match_rule="nearest")).tests[0].selection
    total = sum(match_distance(x, y, ["age"]) for x, y in zip(nearest.x, nearest.y))
    assert total == 2  # each twenties speaker with a thirties one (1 band), sixties with sixties


def test_a_speaker_in_both_groups_is_left_out_of_both(tmp_path):
    corpus = write_corpus(tmp_path / "cv", {**speakers(3, gender="female"), **speakers(3, gender="male")})
    rows = (tmp_path / "cv" / "validated.tsv").read_text().splitlines()
    rows[1] = rows[1].replace("\tfemale", "\tmale")  # female0's first clip says male: the metadata disagree
    (tmp_path / "cv" / "validated.tsv").write_text("\n".join(rows) + "\n")
    with pytest.raises(StimulusError, match=r"group X \(gender=female\) has 2 speaker"):
        build_tests(spec(corpus))


def test_emotion_labels_map_to_pleasant_and_unpleasant_and_valence_takes_the_extremes(corpus, tmp_path):
    from speat_metric.stimuli.builder import AttributeSpec, select_attributes

    table = write_attributes(tmp_path)
    by_emotion = AttributeSpec(str(table), emotion_column="emotion")
    pleasant, unpleasant = select_attributes(spec(corpus, attributes=by_emotion))
    assert {clip.columns["emotion"] for clip in pleasant} == {"happy", "joy"}
    assert {clip.columns["emotion"] for clip in unpleasant} == {"sad", "angry", "fear"}
    assert len(pleasant) == len(unpleasant) == 12  # every labelled clip of the smaller side; neutral left out
    high, low = select_attributes(spec(corpus, attributes=AttributeSpec(str(table), valence_column="valence",
                                                                       count=3)))
    assert [clip.columns["valence"] for clip in high] == ["12", "12", "11"]
    assert [clip.columns["valence"] for clip in low] == ["0", "0", "0"]
    rows = table.read_text().replace("joy", "glee")
    table.write_text(rows)
    with pytest.raises(StimulusError, match=r"emotion label\(s\) glee are not in the table of emotions"):
        select_attributes(spec(corpus, attributes=AttributeSpec(str(table), emotion_column="emotion")))


def test_the_written_test_is_read_by_custom_tests_with_the_study_attributes(corpus, tmp_path):
    out = tmp_path / "out" / "gender.json"
    assert run_tests_command("tests", "build", corpus, "--x", "gender=female", "--y", "gender=male",
                             "--per-group", "3", "--match", "age", "--out", out) == 0
    test = load_custom_test(out)
    assert (test.x.name, test.y.name, test.a.name, len(test.a)) == ("female", "male", "pleasant", 60)
    assert len(test.pairs) == 3 and all(path.endswith(".wav") for _, path in test.files)
    provenance = json.loads((tmp_path / "out" / "gender.provenance.json").read_text())
    assert provenance["spec"]["corpus"] == "../cv/validated.tsv" and provenance["tests"][0]["A"] == "mess"


def test_the_provenance_rebuilds_the_same_bytes_and_refuses_a_changed_corpus(corpus, tmp_path):
    arguments = ("tests", "build", corpus, "--x", "gender=female", "--y", "gender=male", "--per-group", "3",
                 "--seed", "7", "--attributes", write_attributes(tmp_path), "--emotion-column", "emotion")
    run_tests_command(*arguments, "--out", tmp_path / "one" / "g.json")
    run_tests_command("tests", "build", "--from-provenance", tmp_path / "one" / "g.provenance.json",
                      "--out", tmp_path / "two" / "g.json")
    for name in ("g.json", "g.provenance.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    with pytest.raises(ValueError, match=r"--from-provenance rebuilds what the file records; leave out --per-group"):
        run_tests_command("tests", "build", "--from-provenance", tmp_path / "one" / "g.provenance.json",
                          "--per-group", "4")
    with open(corpus, "a") as file:
        file.write("extra\tfemale0_0.wav\ts\t\tfemale\t\t\n")
    with pytest.raises(StimulusError, match=r"the corpus '../cv/validated.tsv' changed since"):
        run_tests_command("tests", "build", "--from-provenance", tmp_path / "one" / "g.provenance.json")


def test_missing_options_are_named_before_any_work(tmp_path):
    with pytest.raises(ValueError, match=r"speat tests build needs --y, --per-group, --out"):
        run_tests_command("tests", "build", tmp_path / "none.tsv", "--x", "gender=female")
    with pytest.raises(StimulusError, match=r"table '.*none.tsv' does not exist"):
        run_tests_command("tests", "build", tmp_path / "none.tsv", "--x", "gender=female", "--y", "gender=male",
                          "--per-group", "2", "--out", tmp_path / "t.json")
    with pytest.raises(StimulusError, match=r"corpus '.*nowhere' is neither a .tsv/.csv table"):
        run_tests_command("tests", "build", tmp_path / "nowhere", "--x", "gender=female", "--y", "gender=male",
                          "--per-group", "2", "--out", tmp_path / "t.json")


def test_a_dataset_folder_with_embedded_audio_is_a_corpus(corpus, tmp_path):
    import datasets

    rows = list(csv.DictReader(open(corpus), delimiter="\t"))
    dataset = datasets.Dataset.from_dict({
        "client_id": [row["client_id"] for row in rows], "gender": [row["gender"] for row in rows],
        "audio": [str(corpus.parent / "clips" / row["path"]) for row in rows],
    }).cast_column("audio", datasets.Audio(decode=False))
    dataset.save_to_disk(str(tmp_path / "saved"))  # save_to_disk embeds the audio bytes
    out = tmp_path / "out" / "hf.json"
    run_tests_command("tests", "build", tmp_path / "saved", "--x", "gender=female", "--y", "gender=male",
                      "--per-group", "2", "--min-seconds", "0.5", "--out", out)
    test = load_custom_test(out)
    for _, path in test.files:
        if "/mess/" not in path:
            assert soundfile.info(path).duration == pytest.approx(1.0)  # written from the bytes, long clips only
    provenance = json.loads((tmp_path / "out" / "hf.provenance.json").read_text())
    assert provenance["corpus"]["kind"] == "dataset_folder" and provenance["corpus"]["fingerprint"]


def test_by_builds_one_test_per_cell_with_the_same_attributes(tmp_path):
    corpus = write_corpus(tmp_path / "cv", {
        **{f"us-{sex}{i}": {"accents": "us", "gender": sex} for sex in ("female", "male") for i in range(3)},
        **{f"kr-{sex}{i}": {"accents": "korean", "gender": sex} for sex in ("female", "male") for i in range(3)}})
    out = tmp_path / "out" / "accent.json"
    run_tests_command("tests", "build", corpus, "--x", "accents=us", "--y", "accents=korean", "--by",
                      "gender=female,male", "--per-group", "3", "--attributes", write_attributes(tmp_path),
                      "--valence-column", "valence", "--out", out)
    definition = json.loads((tmp_path / "out" / "accent.intersectional.json").read_text())
    assert definition["cells"] == ["accent-female", "accent-male"] and definition["by"] == "gender"
    female, male = (load_custom_test(tmp_path / "out" / f"accent-{cell}.json") for cell in ("female", "male"))
    assert female.a == male.a and female.b == male.b
    assert all("female" in stimulus_id for stimulus_id in female.x.stimulus_ids + female.y.stimulus_ids)
    assert all("-male" in stimulus_id for stimulus_id in male.x.stimulus_ids + male.y.stimulus_ids)


@needs_real_speech
def test_a_french_test_from_a_common_voice_table_is_built_evaluated_and_rebuilt(tmp_path):
    table = write_common_voice_table(tmp_path / "cv")
    emotions = write_emotion_table(tmp_path / "cv")
    out = tmp_path / "built" / "french.json"
    assert run_tests_command("tests", "build", table, "--x", "locale=fr", "--y", "locale=es", "--match", "sentence",
                             "--per-group", "6", "--min-seconds", "0.5", "--max-seconds", "6", "--attributes",
                             emotions, "--valence-column", "valence", "--attribute-count", "6", "--seed", "3",
                             "--out", out) == 0
    test = load_custom_test(out)
    assert all("fr_CA_f_June" in stimulus_id for stimulus_id in test.x.stimulus_ids)
    assert [x.rsplit("/", 1)[1] for x, _ in test.pairs] == [y.rsplit("/", 1)[1] for _, y in test.pairs]
    assert main(["evaluate", "mfcc", "--tests", str(out), "--permutations", "200", "--no-progress",
                 "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "results")]) == 0
    record, = load_records(tmp_path / "results")
    assert (record.test, record.speat.n_x, record.speat.n_a, record.cosines["pairs"] is not None) == ("french", 6, 6,
                                                                                                      True)
    run_tests_command("tests", "build", "--from-provenance", tmp_path / "built" / "french.provenance.json",
                      "--out", tmp_path / "again" / "french.json")
    for name in ("french.json", "french.provenance.json"):
        assert (tmp_path / "built" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


@needs_real_speech
def test_a_gender_test_over_the_codec2_and_asterisk_voices(tmp_path):
    table = write_common_voice_table(tmp_path / "cv")
    run_tests_command("tests", "build", table, "--locale", "en", "--x", "gender=female", "--y", "gender=male",
                      "--per-group", "2", "--out", tmp_path / "g.json")
    test = load_custom_test(tmp_path / "g.json")
    assert sorted(test.y.stimulus_ids) == ["validated/codec2/m2400", "validated/codec2/morig"]
    with pytest.raises(StimulusError, match=r"group Y \(gender=male\) has 2 speaker\(s\) after filtering \(locale "
                       r"en, one clip per speaker\); --per-group asks for 3"):
        run_tests_command("tests", "build", table, "--locale", "en", "--x", "gender=female", "--y", "gender=male",
                          "--per-group", "3", "--out", tmp_path / "g.json")
