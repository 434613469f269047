"""Build the packaged selections of the nine further SpEAT tests from the SpEAT repository's selection files.

Reads the copies of isaacOnline/SpEAT's ``data/`` files (at the commits of their ``MANIFEST.tsv``; default
``../shared/stimuli/speat-battery``) and writes into ``speat_metric/data/selections/`` only what speat needs to
rebuild each group: stimulus ids, roles, pairs, file paths within the corpus, segment times and sample lengths.

- ``speat_battery_targets.csv``: one row per target stimulus of the tests race-coraal-buckeye (T1),
  disability-torgo (T2), disability-uaspeech (T3), synthetic-saa (T4, synthesized side), synthetic-mitchell (T5),
  gender-mitchell (T7), accent-pantos-perkins (T9) and accent-romero-rivas (T12).
- ``saa_human_synthesized_clip_info.csv``, ``saa_british_young_old_clip_info.csv``: the Speech Accent Archive
  speakers of T4 (human side) and T11, in the columns of the existing SAA selection files.
- ``eu_emotion_voice_selection.csv``: the 683 existing EU-Emotion voice clips in ``all.tsv`` order, with the SpEAT
  rule's high/low valence labels (3 per actor among the semantically neutral clips, ties broken by the shuffle under
  ``np.random.seed(431137)``) and each neutral clip's position within the neutral subset (TESTS.md §3.2).

Usage: ``python scripts/build_battery_selections.py [--battery DIR]``. Needs pandas (the shuffle is pandas'
``DataFrame.sample`` under numpy's legacy global seed, as in the SpEAT code).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parent.parent / "speat_metric" / "data" / "selections"
TARGET_COLUMNS = ("test", "role", "stimulus_id", "corpus", "path", "pair_id", "speaker", "sample_length",
                  "start_time", "end_time")
SAA_COLUMNS = ("index", "id", "name", "birth_place", "native_language", "age", "sex")
EU_SEED = 431137
EU_PER_ACTOR = 3


def _stem(path: str) -> str:
    return Path(path).name.rsplit(".", 1)[0]


def _row(test: str, role: str, corpus: str, path: str, *, pair_id: object = "", speaker: str = "",
         sample_length: object = "", start: object = "", end: object = "", name: str | None = None) -> dict:
    return {"test": test, "role": role, "stimulus_id": f"{corpus}/{name or _stem(path)}", "corpus": corpus,
            "path": path, "pair_id": pair_id, "speaker": speaker, "sample_length": int(float(sample_length)),
            "start_time": start, "end_time": end}


def coraal_buckeye(data: Path) -> list[dict]:
    """T1: X = Buckeye (European American), Y = CORAAL (African American); a pair joins a clip and its
    ``match_file_name``; each clip is a segment [start_time, end_time] s of a corpus file."""
    rows = pd.read_csv(data / "coraal_buckeye_joined" / "clip_info.csv")
    pair_of = {}
    for clip in rows.itertuples():
        key = tuple(sorted((clip.file_name, clip.match_file_name)))
        pair_of.setdefault(key, len(pair_of))
    out = []
    for clip in rows.itertuples():
        buckeye = clip.speaker_race == "caucasian"
        corpus = "buckeye" if buckeye else "coraal"
        relative = clip.original_file_path.split("/", 2)[2]  # data/buckeye/s1903a.wav -> s1903a.wav
        out.append(_row("race-coraal-buckeye", "X" if buckeye else "Y", corpus, relative,
                        pair_id=pair_of[tuple(sorted((clip.file_name, clip.match_file_name)))],
                        speaker=clip.speaker, sample_length=clip.sample_length, start=clip.start_time,
                        end=clip.end_time, name=_stem(clip.file_name)))
    return sorted(out, key=lambda row: (row["role"], int(row["stimulus_id"].split("/")[1])))


def torgo(data: Path) -> list[dict]:
    """T2: X = control, Y = dysarthric head-mic phrases; pairs by ``pair_id``."""
    rows = pd.read_csv(data / "TORGO" / "clip_info.csv")
    return [_row("disability-torgo", "X" if clip.dysarthric == "control" else "Y", "torgo",
                 clip.head_mic_fp.split("/", 2)[2], pair_id=int(clip.pair_id), speaker=clip.speaker,
                 sample_length=clip.sample_length, name=clip.uid)
            for clip in rows.sort_values("dysarthric", key=lambda s: s != "control", kind="stable").itertuples()]


def uaspeech(data: Path) -> list[dict]:
    """T3: X = control speakers (folder C...), Y = dysarthric; a pair joins a dysarthric word with its control twin
    (same block, word and microphone)."""
    lines = (data / "UASpeech" / "all.tsv").read_text().splitlines()[1:]
    clips = [(line.split("\t")[0], line.split("\t")[1]) for line in lines if line.strip()]
    names = {_stem(path) for path, _ in clips}
    dysarthric = sorted(_stem(path) for path, _ in clips if not path.startswith("C"))
    pair_of = {}
    for index, name in enumerate(dysarthric):
        if "C" + name not in names:
            raise SystemExit(f"UASpeech: {name} has no control twin")
        pair_of[name] = pair_of["C" + name] = index
    out = [_row("disability-uaspeech", "X" if path.startswith("C") else "Y", "uaspeech", path,
                pair_id=pair_of[_stem(path)], speaker=path.split("/")[0], sample_length=length)
           for path, length in clips]
    return sorted(out, key=lambda row: row["role"])


def synthesized(data: Path) -> list[dict]:
    """T4, Y side: the 57 text-to-speech clips (files of the SpEAT repository's ``data/human_synthesized/``)."""
    rows = pd.read_csv(data / "human_synthesized" / "clip_info.csv")
    return [_row("synthetic-saa", "Y", "synthesized", clip.id, speaker=clip.voice, sample_length=clip.sample_length)
            for clip in rows[~rows["human"]].itertuples()]


def mitchell(data: Path) -> list[dict]:
    """T5 (human vs synthesized) and T7 (female vs male) over the same 128 clips of Mitchell et al."""
    rows = pd.read_csv(data / "audio_iats" / "mitchell_et_al" / "audio_info.csv")
    out = []
    for test, column, x_value in (("synthetic-mitchell", "human_or_synthesized", "human"),
                                  ("gender-mitchell", "male_or_female", "female")):
        for role in ("X", "Y"):
            chosen = rows[(rows[column] == x_value) == (role == "X")]
            out += [_row(test, role, "mitchell", clip.file_name, sample_length=clip.sample_length)
                    for clip in chosen.itertuples()]
    return out


def pantos_perkins(data: Path) -> list[dict]:
    """T9: X = American, Y = Korean-accented clips of Pantos & Perkins."""
    rows = pd.read_csv(data / "audio_iats" / "pantos_perkins" / "clip_info.csv")
    return [_row("accent-pantos-perkins", "X" if clip.category == "american" else "Y", "pantos_perkins",
                 clip.clip_name, sample_length=clip.sample_length)
            for clip in rows.sort_values("category", kind="stable").itertuples()]


def romero_rivas(data: Path) -> list[dict]:
    """T12: X = native (British), Y = foreign (Spanish-accented) neutral words, both recorded versions."""
    rows = pd.read_csv(data / "audio_iats" / "romero_rivas_et_al" / "clip_info.csv")
    rows = rows[rows["stimuli_type"] == "neutral"]
    return [_row("accent-romero-rivas", "X" if clip.speaker_type == "native" else "Y", "romero_rivas",
                 clip.original_path.split("/", 3)[3], sample_length=clip.sample_length)
            for clip in rows.sort_values("speaker_type", key=lambda s: s != "native", kind="stable").itertuples()]


def high_low_by_speaker(frame: pd.DataFrame, column: str, n: int) -> pd.Series:
    """SpEAT's ``by_speaker`` rule: shuffle the rows (numpy's global RandomState), sort stably by speaker then
    `column`, label each speaker's first `n` rows ``low_<column>`` and last `n` ``high_<column>``."""
    shuffled = frame.sample(n=len(frame), replace=False)
    ordered = shuffled.sort_values(["speaker_id", column], kind="stable")
    labels = pd.Series([""] * len(frame), index=frame.index, dtype=object)
    labels[ordered.groupby("speaker_id").tail(n).index] = f"high_{column}"
    labels[ordered.groupby("speaker_id").head(n).index] = f"low_{column}"  # low wins a clash, as in the SpEAT code
    return labels


def eu_emotion(data: Path) -> pd.DataFrame:
    info = pd.read_csv(data / "EU_Emotion_Stimulus_Set" / "voice_file_info.csv")
    info = info[info["file_exists"]].reset_index(drop=True)
    listed = [line.split("\t")[0] for line in
              (data / "EU_Emotion_Stimulus_Set" / "all.tsv").read_text().splitlines()[1:] if line.strip()]
    paths = [path.split("/", 2)[2] for path in info["path"]]
    if paths != listed:
        raise SystemExit("EU-Emotion: voice_file_info's existing rows are not all.tsv's lines")
    neutral = info[info["semantically_neutral"] == "yes"].copy()
    np.random.seed(EU_SEED)
    ranks = high_low_by_speaker(neutral, "valence", EU_PER_ACTOR)
    out = pd.DataFrame({"position": range(len(info)), "path": paths, "speaker_id": info["speaker_id"],
                        "semantically_neutral": info["semantically_neutral"], "valence": info["valence"],
                        "sample_length": info["sample_length"].astype(int)})
    position_in_neutral = {row: position for position, row in enumerate(neutral.index)}
    out["neutral_position"] = [position_in_neutral.get(row, "") for row in range(len(info))]
    out["valence_rank"] = [ranks.get(row, "") for row in range(len(info))]
    return out


def check_mess_rule(selections: Path, ratings: Path) -> None:
    """The same rule on MESS (seed 431137, 10 per talker, all.tsv order = sorted codes) must give the packaged MESS
    attribute selection: a check that `high_low_by_speaker` reads the SpEAT rule right."""
    clips = pd.read_csv(ratings).sort_values("code").reset_index(drop=True)
    clips["speaker_id"] = clips["gender"] + clips["talker"].astype(str)
    np.random.seed(EU_SEED)
    ranks = high_low_by_speaker(clips.rename(columns={"Valence": "valence"}), "valence", 10)
    shipped = pd.read_csv(selections)
    ours = {(code, rank) for code, rank in zip(clips["code"], ranks) if rank}
    if ours != set(zip(shipped["code"], shipped["valence_rank"])):
        raise SystemExit("the by_speaker rule does not reproduce the packaged MESS selection")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--battery", type=Path, default=Path("../shared/stimuli/speat-battery"))
    data = parser.parse_args().battery / "data"
    check_mess_rule(OUT / "mess_speat_attribute_selection.csv", OUT / "mess_valence_by_code.csv")
    rows = (coraal_buckeye(data) + torgo(data) + uaspeech(data) + synthesized(data) + mitchell(data)
            + pantos_perkins(data) + romero_rivas(data))
    with open(OUT / "speat_battery_targets.csv", "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, TARGET_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    humans = pd.read_csv(data / "human_synthesized" / "clip_info.csv")
    humans[humans["human"]][list(SAA_COLUMNS)].to_csv(OUT / "saa_human_synthesized_clip_info.csv", index=False,
                                                      lineterminator="\n")
    british = pd.read_csv(data / "speech_accent_archive" / "british_young_old" / "clip_info.csv")
    british[[*SAA_COLUMNS, "age_rank"]].to_csv(OUT / "saa_british_young_old_clip_info.csv", index=False,
                                               lineterminator="\n")
    eu_emotion(data).to_csv(OUT / "eu_emotion_voice_selection.csv", index=False, lineterminator="\n")


if __name__ == "__main__":
    main()
