"""Tests of the published battery (speat_metric/stimuli/battery.py): the 12 tests, their sizes and pairs against the
SpEAT repository's selection files, where their audio comes from, the EU-Emotion selections, the published tables."""

from __future__ import annotations

import csv
import io
import re
import wave
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from speat_metric.cli import main
from speat_metric.stimuli import load_speat_test
from speat_metric.stimuli.battery import (
    BATTERY,
    CorpusUnavailableError,
    battery_clips,
    eu_emotion_groups,
    get_speat_test,
    published_tests,
)
from speat_metric.stimuli.errors import StimulusError
from speat_metric.stimuli.loaders import cut_segment
from speat_metric.stimuli.selections import DATA_DIR

ROOT = Path(__file__).resolve().parent.parent


def wav_bytes(seconds: float = 0.3, rate: int = 16000, frequency: float = 440.0) -> bytes:
    samples = (0.3 * np.sin(2 * np.pi * frequency * np.arange(int(rate * seconds)) / rate) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    return buffer.getvalue()


def shared_rows(battery: Path, relative: str) -> list[dict[str, str]]:
    with open(battery / "data" / relative, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def tsv_paths(battery: Path, relative: str) -> list[str]:
    return [line.split("\t")[0] for line in (battery / "data" / relative).read_text().splitlines()[1:] if line]


@pytest.fixture
def battery(shared_dir: Path) -> Path:
    folder = shared_dir / "stimuli" / "speat-battery"
    if not (folder / "data").is_dir():
        pytest.skip("../shared/stimuli/speat-battery (the SpEAT selection files) is not present")
    return folder


def test_listing_shows_all_twelve_tests_with_ids_sizes_and_audio(capsys: pytest.CaptureFixture,
                                                                   tmp_path: Path) -> None:
    (tmp_path / "uaspeech").mkdir()
    assert main(["stimuli", "list", "--stimuli", str(tmp_path), "--cache-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for test in BATTERY:
        spec = get_speat_test(test.test_id)
        groups = "   ".join(f"{g.role} {g.name} ({len(g)})" for g in spec.groups)
        row = next(i for i, line in enumerate(lines) if line.startswith(f"  {test.label:<4} {test.test_id} "))
        assert groups in lines[row] and f"pairs: {len(spec.pairs) or 'none'}" in lines[row]
        assert lines[row + 1].strip().startswith("audio: ")
    assert re.search(r"T6 +gender .*speat's original test", out) and re.search(r"T10 +age .*original", out)
    status = {test.test_id: lines[i + 1] for test in BATTERY for i, line in enumerate(lines)
              if line.startswith(f"  {test.label:<4} {test.test_id} ")}
    assert "UA-Speech: user copy found" in status["disability-uaspeech"]
    assert "Buckeye Corpus: needs a copy (register at https://buckeyecorpus.osu.edu" in status["race-coraal-buckeye"]
    assert "TORGO: downloadable (" in status["disability-torgo"]
    assert "Speech Accent Archive: downloadable" in status["gender"]


def test_sizes_and_pairs_are_those_of_the_speat_selection_files(battery: Path) -> None:
    specs = published_tests()
    ids = {test: (set(spec.x.stimulus_ids), set(spec.y.stimulus_ids)) for test, spec in specs.items()}
    # T1: Buckeye (caucasian) vs CORAAL, pairs by match_file_name
    t1 = shared_rows(battery, "coraal_buckeye_joined/clip_info.csv")
    corpus = {row["file_name"]: "buckeye" if row["speaker_race"] == "caucasian" else "coraal" for row in t1}
    clip = {name: f"{corpus[name]}/{name[:-4]}" for name in corpus}
    assert ids["race-coraal-buckeye"] == ({clip[n] for n in corpus if corpus[n] == "buckeye"},
                                          {clip[n] for n in corpus if corpus[n] == "coraal"})
    expected = {(clip[r["file_name"]], clip[r["match_file_name"]]) for r in t1 if corpus[r["file_name"]] == "buckeye"}
    assert set(specs["race-coraal-buckeye"].pairs) == expected and len(expected) == 60
    # T2: TORGO control vs dysarthric, pairs by pair_id
    t2 = shared_rows(battery, "TORGO/clip_info.csv")
    by_pair: dict[str, dict[str, str]] = {}
    for row in t2:
        by_pair.setdefault(row["pair_id"], {})[row["dysarthric"]] = f"torgo/{row['uid']}"
    assert set(specs["disability-torgo"].pairs) == {(p["control"], p["dysarthric"]) for p in by_pair.values()}
    # T3: UA-Speech folders C* vs the others, each word with its control twin
    t3 = tsv_paths(battery, "UASpeech/all.tsv")
    control = {f"uaspeech/{Path(p).stem}" for p in t3 if p.startswith("C")}
    assert ids["disability-uaspeech"] == (control, {f"uaspeech/{Path(p).stem}" for p in t3} - control)
    assert all(x == f"uaspeech/C{y.split('/')[1]}" for x, y in specs["disability-uaspeech"].pairs)
    # T4: human SAA rows vs synthesized files
    t4 = shared_rows(battery, "human_synthesized/clip_info.csv")
    assert ids["synthetic-saa"] == ({f"saa/{r['name']}" for r in t4 if r["human"] == "True"},
                                    {f"synthesized/{r['id'][:-4]}" for r in t4 if r["human"] == "False"})
    # T5, T7: Mitchell et al.
    t5 = shared_rows(battery, "audio_iats/mitchell_et_al/audio_info.csv")
    for test, column, x_value in (("synthetic-mitchell", "human_or_synthesized", "human"),
                                  ("gender-mitchell", "male_or_female", "female")):
        x = {f"mitchell/{r['file_name'][:-4]}" for r in t5 if r[column] == x_value}
        assert ids[test] == (x, {f"mitchell/{r['file_name'][:-4]}" for r in t5} - x)
    # T9: Pantos & Perkins
    t9 = shared_rows(battery, "audio_iats/pantos_perkins/clip_info.csv")
    assert ids["accent-pantos-perkins"] == (
        {f"pantos_perkins/{r['clip_name'][:-4]}" for r in t9 if r["category"] == "american"},
        {f"pantos_perkins/{r['clip_name'][:-4]}" for r in t9 if r["category"] == "foreign"})
    # T11: British young/old
    t11 = shared_rows(battery, "speech_accent_archive/british_young_old/clip_info.csv")
    assert ids["age-uk"] == ({f"saa/{r['name']}" for r in t11 if r["age_rank"] == "low_age"},
                             {f"saa/{r['name']}" for r in t11 if r["age_rank"] == "high_age"})
    # T12: Romero-Rivas neutral words, both versions
    t12 = [r for r in shared_rows(battery, "audio_iats/romero_rivas_et_al/clip_info.csv")
           if r["stimuli_type"] == "neutral"]
    assert ids["accent-romero-rivas"] == (
        {f"romero_rivas/{r['clip_name']}" for r in t12 if r["speaker_type"] == "native"},
        {f"romero_rivas/{r['clip_name']}" for r in t12 if r["speaker_type"] == "foreign"})
    # every size as published
    published = {(r["Test"], r["Authors"], r["Target Dataset"]): r
                 for r in shared_rows(battery, "../../../reference/speat_published_all_tests_mean_mean.csv")}
    for test in BATTERY:
        row = published[test.published]
        sizes = specs[test.test_id].sizes
        assert sizes["A"] == sizes["B"] == int(row["Number of Attribute Embeddings per Group"]), test.test_id
        if test.test_id != "disability-uaspeech":  # published as 55 / 60: 55 per target group, 60 per attribute
            assert sizes["X"] == sizes["Y"] == int(row["Number of Target Embeddings per Group"]), test.test_id


def test_a_licensed_corpus_without_a_copy_is_one_line_naming_it_where_and_the_layout(tmp_path: Path) -> None:
    with pytest.raises(CorpusUnavailableError) as caught:
        load_speat_test("disability-uaspeech", tmp_path, progress=False)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("test 'disability-uaspeech' needs the UA-Speech, which speat cannot download: request "
                              "it from the UIUC ISLE group")
    assert "SPEAT_CORPUS_UASPEECH=DIR or put it at <--stimuli DIR>/uaspeech/" in message
    assert "M01/M01_B1_UW64_M7.wav" in message
    with pytest.raises(CorpusUnavailableError, match=r"needs the TORGO, which speat downloads from .* with --stimuli "
                                                     r"speat \(or `speat stimuli download --tests disability-torgo`\), "
                                                     r"but this source has no copy of it"):
        load_speat_test("disability-torgo", tmp_path, progress=False)


def test_a_corpus_folder_that_does_not_exist_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEAT_CORPUS_PANTOS_PERKINS", str(tmp_path / "nowhere"))
    with pytest.raises(StimulusError, match=r"\$SPEAT_CORPUS_PANTOS_PERKINS = '.*nowhere' is not a folder"):
        load_speat_test("accent-pantos-perkins", tmp_path, progress=False)


def test_a_fake_user_copy_in_the_expected_layout_makes_a_licensed_test_load(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    spec = get_speat_test("accent-pantos-perkins")
    copy = tmp_path / "pp-copy"  # given by environment variable; MESS from the --stimuli folder
    for stimulus_id in spec.x.stimulus_ids + spec.y.stimulus_ids:
        path = copy / battery_clips()[stimulus_id].path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(wav_bytes())
    for stimulus_id in spec.a.stimulus_ids + spec.b.stimulus_ids:
        (tmp_path / "stimuli" / "mess").mkdir(parents=True, exist_ok=True)
        (tmp_path / "stimuli" / "mess" / f"{stimulus_id[5:]}_SCR.wav").write_bytes(wav_bytes())
    monkeypatch.setenv("SPEAT_CORPUS_PANTOS_PERKINS", str(copy))
    test = load_speat_test("accent-pantos-perkins", tmp_path / "stimuli", progress=False)
    assert Counter(s.role for s in test) == {"X": 8, "Y": 8, "A": 60, "B": 60}
    assert {s.corpus for s in test.of_role("X")} == {"pantos_perkins"}
    assert {"speat_battery_targets.csv", "mess_speat_attribute_selection.csv"} <= set(
        test.provenance.selection_versions)
    (copy / battery_clips()[spec.x.stimulus_ids[0]].path).unlink()
    test = load_speat_test("accent-pantos-perkins", tmp_path / "stimuli", progress=False, allow_missing=True)
    assert test.provenance.dropped_ids == [spec.x.stimulus_ids[0]]


def test_speat_evaluate_runs_a_licensed_test_from_the_copy_given_by_corpus(tmp_path: Path, capsys) -> None:
    """`speat evaluate --corpus NAME=DIR` end to end on a fake copy; a bad --corpus is one line before any work."""
    from speat_metric.cli import main
    from speat_metric.results import load_records

    spec = get_speat_test("accent-pantos-perkins")
    copy = tmp_path / "pp-copy"
    for number, stimulus_id in enumerate(spec.x.stimulus_ids + spec.y.stimulus_ids):
        path = copy / battery_clips()[stimulus_id].path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(wav_bytes(frequency=200.0 + 37 * number))
    (tmp_path / "stimuli" / "mess").mkdir(parents=True)
    for number, stimulus_id in enumerate(spec.a.stimulus_ids + spec.b.stimulus_ids):
        clip = tmp_path / "stimuli" / "mess" / f"{stimulus_id[5:]}_SCR.wav"
        clip.write_bytes(wav_bytes(frequency=300.0 + 11 * number))
    common = ["evaluate", "mfcc", "--tests", "accent-pantos-perkins", "--stimuli", str(tmp_path / "stimuli"),
              "--permutations", "100", "--no-progress", "--out", str(tmp_path / "results")]
    assert main([*common, "--corpus", f"pantos_perkins={copy}"]) == 0
    (record,) = load_records(tmp_path / "results")
    assert (record.test, record.speat.n_x, record.speat.n_y, record.speat.n_a) == ("accent-pantos-perkins", 8, 8, 60)
    capsys.readouterr()
    for value, message in ((f"pantos_perkins={tmp_path / 'nowhere'}", "--corpus pantos_perkins = "),
                           ("pantos_perkins", "write NAME=DIR"), (f"nonsense={copy}", "unknown corpus 'nonsense'")):
        assert main([*common, "--corpus", value]) == 2
        error = capsys.readouterr().err
        assert message in error and error.count("\n") == 1, error


def test_eu_emotion_default_is_the_labelled_clips_and_speat2023_the_positions(battery: Path) -> None:
    info = [r for r in shared_rows(battery, "EU_Emotion_Stimulus_Set/voice_file_info.csv")
            if r["file_exists"] == "True"]
    listed = tsv_paths(battery, "EU_Emotion_Stimulus_Set/all.tsv")
    neutral = [row for row in info if row["semantically_neutral"] == "yes"]
    design = eu_emotion_groups()
    code = eu_emotion_groups(positional=True)
    stem = {f"eu_emotion/{Path(row['path']).stem}": row for row in info}
    for role, group in zip("AB", design):
        rows = [stem[s] for s in group.stimulus_ids]
        assert all(row["semantically_neutral"] == "yes" for row in rows)
        assert Counter(row["speaker_id"] for row in rows) == dict.fromkeys({r["speaker_id"] for r in neutral}, 3)
        for actor in {row["speaker_id"] for row in rows}:  # the chosen are the actor's extremes (ties aside)
            chosen = sorted(float(r["valence"]) for r in rows if r["speaker_id"] == actor)
            others = [float(r["valence"]) for r in neutral if r["speaker_id"] == actor and r not in rows]
            assert (min(chosen) >= max(others)) if role == "A" else (max(chosen) <= min(others))
    # speat2023: the all.tsv rows numbered by each labelled clip's position within the neutral subset
    position = {f"eu_emotion/{Path(row['path']).stem}": index for index, row in enumerate(neutral)}
    for labelled, positional in zip(design, code):
        assert positional.stimulus_ids == tuple(f"eu_emotion/{Path(listed[position[s]]).stem}"
                                                for s in labelled.stimulus_ids)
        assert len(set(positional.stimulus_ids) & set(labelled.stimulus_ids)) < len(labelled) // 2
        assert all(position[s] < len(neutral) for s in labelled.stimulus_ids)
    assert get_speat_test("age-uk", profile="speat2023").a == code[0]
    assert get_speat_test("accent-romero-rivas").b == design[1]


def test_the_reproducibility_tables_are_the_published_csv() -> None:
    with open(DATA_DIR / "reference" / "speat_published_all_tests_mean_mean.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    doc = (ROOT / "docs" / "reproducibility.md").read_text()
    for test in BATTERY:
        heading = doc.index(f"### {test.label} `{test.test_id}`")
        section = doc[heading:doc.find("\n#", heading + 1)]
        shown = re.findall(r"^\| (\w+) \| (\S+) \| (\S+) \|$", section, flags=re.M)[1:]  # after the header
        expected = [(r["Speech Model"], r["SpEAT d"], r["SpEAT p"]) for r in rows
                    if (r["Test"], r["Authors"], r["Target Dataset"]) == test.published]
        assert shown == expected and len(expected) == 16, test.test_id


def test_a_segment_is_cut_from_the_whole_file(tmp_path: Path) -> None:
    whole = tmp_path / "s1903a.wav"
    rate = 8000
    samples = np.arange(rate * 3, dtype="<i2")  # sample i holds the value i: the cut's first value is its start
    with wave.open(str(whole), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    target = cut_segment(whole, 0.5, 1.25, tmp_path / "segments" / "0.wav")
    with wave.open(str(target), "rb") as reader:
        assert reader.getframerate() == rate
        cut = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    assert cut[0] == 4000 and len(cut) == 6000 and cut[-1] == 9999
    with pytest.raises(StimulusError, match=r"the segment 5.0-6.0 s lies outside its 3.00 s"):
        cut_segment(whole, 5.0, 6.0, tmp_path / "segments" / "1.wav")
