"""Checks of the committed synthetic demo set (speat_metric/data/demo/) and of its generator's pure helpers.

The set ships inside the package so that ``speat evaluate`` runs offline; CI has no espeak-ng, so these tests check
the committed files and run only the generator's helpers that need no synthesiser.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.resources
import importlib.util
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile

REPOSITORY = Path(__file__).resolve().parents[1]
DEMO_DIR = Path(str(importlib.resources.files("speat_metric") / "data" / "demo"))
COLUMNS = ["stimulus_id", "file_name", "test", "role", "group", "voice", "text", "pitch", "speed", "sex",
           "age_group", "accent", "valence", "seconds"]
GROUPS = {  # (test, role) -> group, as in the real SpEAT tests
    ("gender", "X"): "female", ("gender", "Y"): "male",
    ("age", "X"): "young", ("age", "Y"): "old",
    ("native", "X"): "us", ("native", "Y"): "korean",
    ("attributes", "A"): "pleasant", ("attributes", "B"): "unpleasant",
}
# The Speech Accent Archive elicitation paragraph, as published by accent.gmu.edu.
STELLA = ("Please call Stella. Ask her to bring these things with her from the store: Six spoons of fresh snow peas, "
          "five thick slabs of blue cheese, and maybe a snack for her brother Bob. We also need a small plastic snake "
          "and a big toy frog for the kids. She can scoop these things into three red bags, and we will go meet her "
          "Wednesday at the train station.")
SAMPLING_RATE = 16_000


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    with open(DEMO_DIR / "metadata.csv", newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def audio(rows) -> dict[str, tuple[np.ndarray, int, int]]:
    """stimulus_id -> (samples as float64, sampling rate, channels), each file decoded once."""
    decoded = {}
    for row in rows:
        samples, rate = soundfile.read(DEMO_DIR / row["file_name"], dtype="float64", always_2d=True)
        decoded[row["stimulus_id"]] = (samples[:, 0], rate, samples.shape[1])
    return decoded


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("make_demo_stimuli", REPOSITORY / "scripts" / "make_demo_stimuli.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is being built
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_metadata_has_exactly_the_documented_columns():
    with open(DEMO_DIR / "metadata.csv", newline="", encoding="utf-8") as file:
        header = next(csv.reader(file))
    assert header == COLUMNS


def test_every_test_role_has_its_group_and_at_least_12_clips(rows):
    counts = Counter((row["test"], row["role"], row["group"]) for row in rows)
    assert set(counts) == {(test, role, group) for (test, role), group in GROUPS.items()}
    assert all(count >= 12 for count in counts.values()), counts


def test_labels_agree_with_the_group(rows):
    label_of_test = {"gender": "sex", "age": "age_group", "native": "accent", "attributes": "valence"}
    for row in rows:
        assert row[label_of_test[row["test"]]] == row["group"], row["stimulus_id"]
        assert (row["valence"] != "") == (row["test"] == "attributes"), row["stimulus_id"]
        assert row["sex"] in {"female", "male"} and row["accent"] in {"us", "korean"}
        assert row["age_group"] in ({"young", "old"} if row["test"] == "age" else {"adult"})
        assert 0 <= int(row["pitch"]) <= 99 and 80 <= int(row["speed"]) <= 450, row["stimulus_id"]


def test_age_and_native_groups_balance_the_sexes_and_attributes_have_female_and_male_talkers(rows):
    for test in ("age", "native", "attributes"):
        for group in {row["group"] for row in rows if row["test"] == test}:
            sexes = Counter(row["sex"] for row in rows if row["test"] == test and row["group"] == group)
            assert sexes["female"] == sexes["male"] > 0, (test, group, sexes)


def test_no_clip_is_in_two_groups(rows, audio):
    ids = [row["stimulus_id"] for row in rows]
    assert len(set(ids)) == len(ids)
    assert len({row["file_name"] for row in rows}) == len(rows)
    fingerprints = {hashlib.sha256(np.round(samples * 32768).astype(np.int32).tobytes()).hexdigest()
                    for samples, _, _ in audio.values()}
    assert len(fingerprints) == len(rows), "two rows point at the same audio"
    for row in rows:
        assert re.fullmatch(rf"demo-{row['test']}-{row['group']}-\d\d", row["stimulus_id"]), row["stimulus_id"]
        assert re.fullmatch(rf"audio/{row['stimulus_id']}\.(mp3|flac|ogg|wav)", row["file_name"]), row["file_name"]


def test_every_listed_file_decodes_at_16khz_mono_with_speech(rows, audio):
    for row in rows:
        samples, rate, channels = audio[row["stimulus_id"]]
        name = row["file_name"]
        assert (rate, channels) == (SAMPLING_RATE, 1), name
        seconds = len(samples) / rate
        assert 1.5 <= seconds <= 8.0, (name, seconds)
        assert abs(seconds - float(row["seconds"])) < 0.01, name
        assert np.sqrt(np.mean(samples**2)) > 0.02, f"{name} is nearly silent"
        assert np.abs(samples).max() < 1.0, f"{name} clips"
        frames = samples[: len(samples) // 160 * 160].reshape(-1, 160)
        loud = np.sqrt(np.mean(frames**2, axis=1)) > 0.01
        assert loud.mean() > 0.4, f"{name} is mostly silence"


def test_the_audio_folder_holds_only_listed_files_and_no_staging_leftovers(rows):
    assert sorted(str(path.relative_to(DEMO_DIR)) for path in (DEMO_DIR / "audio").iterdir()) == sorted(
        row["file_name"] for row in rows)
    assert not [path for path in DEMO_DIR.parent.iterdir() if path.name.startswith(".demo")]


def test_total_size_is_under_10_mb():
    total = sum(path.stat().st_size for path in DEMO_DIR.rglob("*") if path.is_file())
    assert total < 10_000_000, f"{total} bytes"


def test_readme_says_it_is_a_synthetic_pipeline_check_not_a_bias_measurement():
    readme = (DEMO_DIR / "README.md").read_text(encoding="utf-8").lower()
    assert "synthetic pipeline check" in readme and "not a bias measurement" in readme


def test_targets_read_the_stella_paragraph_with_the_same_texts_in_both_groups(rows):
    paragraph = " ".join(words(STELLA))
    chunks = []
    for row in rows:
        if row["test"] == "attributes":
            continue
        assert f" {' '.join(words(row['text']))} " in f" {paragraph} ", row["text"]
        chunks.append(row["text"])
    distinct = sorted(set(chunks), key=lambda text: paragraph.index(" ".join(words(text))))
    assert sum((words(text) for text in distinct), []) == words(STELLA), "the chunks do not cover the paragraph"
    for test in ("gender", "age", "native"):
        x, y = ([row["text"] for row in rows if row["test"] == test and row["role"] == role] for role in "XY")
        assert Counter(x) == Counter(y), test


def test_attributes_are_mess_like_sentences_said_once_in_each_group(rows):
    pleasant, unpleasant = ([row["text"] for row in rows if row["role"] == role] for role in "AB")
    for text in pleasant + unpleasant:
        assert re.fullmatch(r"(Michael|Theo|Victor) discussed the [a-z]+ and the [a-z]+ today\.", text), text
    assert Counter(pleasant) == Counter(unpleasant)
    assert len(set(pleasant)) == len(pleasant)


def test_native_groups_use_the_same_variants_in_english_and_korean(rows):
    variants = {}
    for group, language in (("us", "en-us"), ("korean", "ko")):
        voices = [row["voice"] for row in rows if row["test"] == "native" and row["group"] == group]
        assert all(voice.startswith(f"espeak-ng {language}+") for voice in voices), voices
        variants[group] = Counter(voice.split("+")[1].split(";")[0] for voice in voices)
    assert variants["us"] == variants["korean"]


def test_generator_plan_reproduces_the_committed_metadata(rows, generator):
    plan = generator.plan_demo_set()
    assert plan == generator.plan_demo_set()
    assert [clip.stimulus_id for clip in plan] == [row["stimulus_id"] for row in rows]
    for clip, row in zip(plan, rows):
        assert generator.metadata_row(clip, float(row["seconds"])) == row
    assert list(generator.METADATA_COLUMNS) == COLUMNS


def test_generator_stimulus_ids(generator):
    assert generator.stimulus_id("gender", "female", 1) == "demo-gender-female-01"
    assert generator.stimulus_id("attributes", "unpleasant", 12) == "demo-attributes-unpleasant-12"
    with pytest.raises(ValueError, match="clip numbers start at 1, got 0"):
        generator.stimulus_id("age", "old", 0)


def test_generator_sex_lookup_rejects_unlisted_variants(generator):
    assert generator.variant_sex("f2") == "female" and generator.variant_sex("m7") == "male"
    with pytest.raises(ValueError, match=r"variant 'klatt' has no sex listed: add it to FEMALE_VARIANTS"):
        generator.variant_sex("klatt")


def test_korean_readings_are_pure_hangul_for_every_target_sentence(generator):
    assert set(generator.KOREAN_READINGS) == set(generator.TARGET_SENTENCES)
    for reading in generator.KOREAN_READINGS.values():
        # Latin letters would make espeak-ng's Korean voice switch to English rules for that word.
        assert re.fullmatch(r"[\uac00-\ud7a3 .,]+", reading), reading


def test_finish_clip_trims_resamples_and_normalises_a_tone_burst(generator):
    rate = 22_050
    time = np.arange(rate) / rate
    burst = np.concatenate([np.zeros(rate // 2), 0.3 * np.sin(2 * np.pi * 220 * time), np.zeros(rate // 2)])
    finished = generator.finish_clip(burst, rate)
    assert finished.dtype == np.float32
    # 1 s of tone plus the 0.1 s margins, to within a 10 ms frame on each side.
    assert abs(len(finished) - int(1.2 * SAMPLING_RATE)) <= 2 * SAMPLING_RATE // 100
    middle = finished[int(0.2 * SAMPLING_RATE): int(1.0 * SAMPLING_RATE)].astype(np.float64)
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(10 ** (-20 / 20), rel=0.02)
    assert np.abs(finished[: int(0.05 * SAMPLING_RATE)]).max() < 1e-3  # the kept margin is silence


def test_finish_clip_lowers_the_gain_to_keep_the_peak_under_minus_1_dbfs(generator):
    samples = np.full(SAMPLING_RATE, 0.01)
    samples[SAMPLING_RATE // 2] = 0.5  # a click 34 dB above the rest: RMS normalisation alone would clip it
    finished = generator.finish_clip(samples, SAMPLING_RATE)
    assert np.abs(finished).max() == pytest.approx(10 ** (-1 / 20), rel=1e-5)


def test_finish_clip_rejects_silence_and_stereo(generator):
    with pytest.raises(ValueError, match="silent or sub-10 ms clip"):
        generator.finish_clip(np.zeros(SAMPLING_RATE), SAMPLING_RATE)
    with pytest.raises(ValueError, match=r"mono waveform, got shape \(100, 2\)"):
        generator.finish_clip(np.zeros((100, 2)), SAMPLING_RATE)


def test_swap_in_replaces_the_old_set_and_leaves_nothing_behind(generator, tmp_path):
    output, staging = tmp_path / "demo", tmp_path / ".demo.staging-1"
    output.mkdir()
    (output / "metadata.csv").write_text("old")
    staging.mkdir()
    (staging / "metadata.csv").write_text("new")
    generator._swap_in(staging, output)
    assert (output / "metadata.csv").read_text() == "new"
    assert [path.name for path in tmp_path.iterdir()] == ["demo"]
    fresh = tmp_path / ".demo.staging-2"
    fresh.mkdir()
    (fresh / "metadata.csv").write_text("newer")
    generator._swap_in(fresh, tmp_path / "other")  # no previous set: a plain rename
    assert (tmp_path / "other" / "metadata.csv").read_text() == "newer"
