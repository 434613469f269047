"""Every SpEAT test Slaughter et al. (2023) published (T1-T12), as packaged selections, and where their audio is.

`BATTERY` lists the 12 published target configurations by speat test id (``gender`` is T6, ``age`` T10, ``native``
T8; the others e.g. ``race-coraal-buckeye`` T1), with their group names, seed, permutations and the (Test, Authors,
Target Dataset) strings of the published result file. `battery_test` builds one as a `SpeatTestSpec` from
``speat_metric/data/selections/`` (``speat_battery_targets.csv``, the SAA files, ``eu_emotion_voice_selection.csv``).

`CORPORA` says for each corpus where its audio comes from: public download (SAA, MESS), download through
``speat stimuli download`` (the synthesized voices, CORAAL, TORGO: `DOWNLOADABLE`), or the user's own copy of a
licensed corpus (Buckeye, UA-Speech, EU-Emotion, Mitchell et al., Pantos & Perkins, Romero-Rivas et al.), found by
`corpus_directory` (``corpora={"buckeye": DIR}``, ``$SPEAT_CORPUS_BUCKEYE``, or ``<--stimuli DIR>/buckeye/``).

The EU-Emotion attributes of ``age-uk`` and ``accent-romero-rivas``: by default the clips labelled high/low valence
(the stated design); with a profile whose ``eu_emotion_positions`` is set (``speat2023``), the all.tsv rows at the
labelled clips' positions within the semantically neutral subset, as the SpEAT code indexes them (TESTS.md §3.2).

Details: docs/stimuli.md, "The published battery".
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from speat_metric.stimuli.errors import StimulusError
from speat_metric.stimuli.selections import (
    ATTRIBUTE_GROUPS,
    ATTRIBUTES_FILE,
    BRITISH_FILE,
    HUMAN_SYNTHESIZED_FILE,
    MESS_CITATION,
    RATINGS_FILE,
    SAA_CITATION,
    SELECTIONS_DIR,
    SPEAT_CITATION,
    TEST_NAMES,
    Citation,
    SpeatTestSpec,
    StimulusGroup,
    attribute_groups,
    original_test,
    read_csv_rows,
    saa_stimulus_id,
)

TARGETS_FILE = "speat_battery_targets.csv"
EU_EMOTION_FILE = "eu_emotion_voice_selection.csv"
SPEAT_COMMIT = "e08f05ecc3b38634a55b6c66074ea1dcaad8a37e"
"""The commit of isaacOnline/SpEAT the selections were copied from (TORGO's two files: see docs/stimuli.md)."""

CORPUS_ENV_PREFIX = "SPEAT_CORPUS_"
"""``$SPEAT_CORPUS_<NAME>`` (e.g. ``SPEAT_CORPUS_UASPEECH``) names the folder of the user's copy of a corpus."""

PUBLIC, DOWNLOADABLE, LICENSED = "public", "downloadable", "licensed"


@dataclass(frozen=True)
class Corpus:
    """A corpus the tests draw audio from. `access`: ``public`` (fetched by the stimulus cache today),
    ``downloadable`` (public, fetched by ``speat stimuli download`` through speat_metric.stimuli.corpora) or
    ``licensed`` (read from the user's copy); `where`: where to get it; `layout`: what speat expects in its folder."""

    name: str
    title: str
    access: str
    where: str
    layout: str

    @property
    def env(self) -> str:
        return CORPUS_ENV_PREFIX + self.name.upper()


CORPORA: Mapping[str, Corpus] = MappingProxyType({corpus.name: corpus for corpus in (
    Corpus("saa", "Speech Accent Archive", PUBLIC, "https://accent.gmu.edu", "<name>.mp3"),
    Corpus("mess", "Morgan Emotional Speech Set", PUBLIC, "https://zenodo.org/records/3813437", "<code>_SCR.wav"),
    Corpus("synthesized", "SpEAT synthesized voices", DOWNLOADABLE,
           f"https://github.com/isaacOnline/SpEAT/tree/{SPEAT_COMMIT}/data/human_synthesized",
           "<voice>[_fast|_slow].wav, e.g. male_ms_sam_fast.wav"),
    Corpus("coraal", "CORAAL", DOWNLOADABLE, "https://oraal.uoregon.edu/coraal",
           "<COMPONENT>/<COMPONENT>_audio_partNN_<release>/<file>.wav, e.g. "
           "ROC/ROC_audio_part01_2020.05/ROC_se0_ag1_f_02_1.wav (whole files; speat cuts the segments)"),
    Corpus("torgo", "TORGO", DOWNLOADABLE, "https://www.cs.toronto.edu/~complingweb/data/TORGO/torgo.html",
           "<F|FC|M|MC>/<speaker>/<Session>/wav_headMic/<id>.wav, e.g. FC/FC03/Session2/wav_headMic/0005.wav"),
    Corpus("buckeye", "Buckeye Corpus", LICENSED, "register at https://buckeyecorpus.osu.edu (free for "
           "non-commercial research)", "sNNNNx.wav, e.g. s1903a.wav (whole files; speat cuts the segments)"),
    Corpus("uaspeech", "UA-Speech", LICENSED, "request it from the UIUC ISLE group, "
           "http://www.isle.illinois.edu/sst/data/UASpeech/",
           "<speaker>/<speaker>_B<block>_<word>_M<mic>.wav of the noisereduce version, e.g. M01/M01_B1_UW64_M7.wav"),
    Corpus("eu_emotion", "EU-Emotion Stimulus Set (UK voice stimuli)", LICENSED, "request it from the authors "
           "(O'Reilly et al. 2016, doi 10.3758/s13428-015-0601-4)",
           "Original/<Emotion>/<id>.wav and 'Fixed - amplified volume'/<Emotion>/fix__<id>.wav"),
    Corpus("mitchell", "Mitchell et al. (2011) stimuli", LICENSED, "request them from the authors (Mitchell et al. "
           "2011, doi 10.1016/j.chb.2010.09.002)", "<h|s><m|f><digits>.wav, e.g. hf213.wav"),
    Corpus("pantos_perkins", "Pantos & Perkins (2013) stimuli", LICENSED, "request them from the authors (Pantos "
           "and Perkins 2013, doi 10.1177/0261927X12463005)", "AM_Dr1_<phrase>X3n.wav and KOR_Dr1_<phrase>X3n.wav"),
    Corpus("romero_rivas", "Romero-Rivas et al. (2022) stimuli", LICENSED, "request them from the authors "
           "(Romero-Rivas et al. 2022, doi 10.1177/0261927X211022785)",
           "'IAT_Stimuli'/<word>_<native|foreign>.wav and 'IAT_Stimuli - noise'/<word>_<native|foreign>_Noise.wav"),
)})


@dataclass(frozen=True)
class PublishedTest:
    """One of the 12 published SpEAT target configurations (TESTS.md §4): speat's id, the paper's label (``T1``),
    the group names, the target corpora, the attribute set (``mess`` or ``eu_emotion``), the seed and permutation
    count of the SpEAT code, and the (Test, Authors, Target Dataset) strings of the published result file."""

    test_id: str
    label: str
    title: str
    x: str
    y: str
    corpora: tuple[str, ...]
    attributes: str
    seed: int
    permutations: int
    published: tuple[str, str, str]
    description: str

    @property
    def audio_corpora(self) -> tuple[str, ...]:
        """Every corpus the test's audio comes from, targets then attributes."""
        return (*self.corpora, self.attributes)


BATTERY: tuple[PublishedTest, ...] = (
    PublishedTest("race-coraal-buckeye", "T1", "European American vs African American", "european-american",
                  "african-american", ("buckeye", "coraal"), "mess", 24412168, 1_000_000,
                  ("(European American vs. African American) vs. (Pleasant vs. Unpleasant)", "Nosek et al.",
                   "CORAAL/Buckeye (Matched)"),
                  "European American (X: Buckeye) vs African American (Y: CORAAL) conversational segments, "
                  "propensity-matched in pairs of the same gender and age stratum"),
    PublishedTest("disability-torgo", "T2", "Non-dysarthric vs dysarthric (TORGO)", "non-dysarthric", "dysarthric",
                  ("torgo",), "mess", 12228324, 1_000_000,
                  ("(Non-Dysarthric vs. Dysarthric) vs. (Pleasant vs. Unpleasant)", "Nosek et al.",
                   "TORGO Recordings"),
                  "control (X) vs dysarthric (Y) TORGO head-mic phrases, in pairs with the same prompt and gender"),
    PublishedTest("disability-uaspeech", "T3", "Non-dysarthric vs dysarthric (UA-Speech)", "non-dysarthric",
                  "dysarthric", ("uaspeech",), "mess", 12228324, 1_000_000,
                  ("(Non-Dysarthric vs. Dysarthric) vs. (Pleasant vs. Unpleasant)", "Nosek et al.",
                   "UASpeech Recordings"),
                  "control (X) vs dysarthric (Y) UA-Speech words, each dysarthric word paired with its control twin"),
    PublishedTest("synthetic-saa", "T4", "Human vs synthesized (SAA)", "human", "synthesized",
                  ("saa", "synthesized"), "mess", 62300794, 1_000_000,
                  ("Human vs. Synthesized Speech", "Human Vs. Synthetic (SAA)", "Human Vs. Synthetic (SAA)"),
                  "US-born native English SAA speakers (X) vs 19 text-to-speech voices at 3 speeds (Y), all reading "
                  "the 'Please call Stella' paragraph"),
    PublishedTest("synthetic-mitchell", "T5", "Human vs synthesized (Mitchell et al.)", "human", "synthesized",
                  ("mitchell",), "mess", 62300794, 1_000_000,
                  ("Human vs. Synthesized Speech", "Mitchell et al.", "Mitchell et al. recordings"),
                  "human (X) vs synthesized (Y) voices of Mitchell et al. (2011)"),
    PublishedTest("gender", "T6", "Female vs male (SAA)", "female", "male", ("saa",), "mess", 14955756, 1_000_000,
                  ("Female vs. Male Speech", "Female vs. Male (SAA)", "Female vs. Male (SAA)"),
                  "speat's `gender` test"),
    PublishedTest("gender-mitchell", "T7", "Female vs male (Mitchell et al.)", "female", "male", ("mitchell",),
                  "mess", 14955756, 1_000_000,
                  ("Female vs. Male Speech", "Mitchell et al.", "Mitchell et al. recordings"),
                  "female (X) vs male (Y) voices of Mitchell et al. (2011), human and synthesized together"),
    PublishedTest("native", "T8", "U.S. vs Korean-accented (SAA)", "us", "korean", ("saa",), "mess", 82518857,
                  1_000_000, ("American vs. Korean English Accents", "SAA (U.S. vs. Korean Matches)",
                              "SAA (U.S. vs. Korean Matches)"),
                  "speat's `native` test"),
    PublishedTest("accent-pantos-perkins", "T9", "U.S. vs Korean-accented (Pantos & Perkins)", "us", "korean",
                  ("pantos_perkins",), "mess", 82518857, 12_870,
                  ("American vs. Korean English Accents", "Pantos & Perkins", "Pantos & Perkins recordings"),
                  "American (X) vs Korean-accented (Y) English phrases of Pantos & Perkins (2013); every one of the "
                  "C(16,8) = 12,870 partitions"),
    PublishedTest("age", "T10", "Young vs old (SAA, U.S.)", "young", "old", ("saa",), "mess", 79331598, 1_000_000,
                  ("Young vs. Old Accents", "Nosek et al.",
                   "Speaker Accent Archive (Young/Old Native American English Speakers)"),
                  "speat's `age` test"),
    PublishedTest("age-uk", "T11", "Young vs old (SAA, U.K./Ireland)", "young", "old", ("saa",), "eu_emotion",
                  79331598, 1_000_000,
                  ("Young vs. Old Accents", "Nosek et al.",
                   "Speaker Accent Archive (Young/Old Native British English Speakers)"),
                  "young (X, 18-21) vs old (Y, 38-72) native English SAA speakers born in the U.K. or Ireland, 6 "
                  "female and 6 male in each"),
    PublishedTest("accent-romero-rivas", "T12", "British vs Spanish-accented (Romero-Rivas et al.)", "british",
                  "spanish", ("romero_rivas",), "eu_emotion", 88193464, 1_000_000,
                  ("British vs. Spanish English Accents", "Romero Rivas et al.", "Romero Rivas et al recordings"),
                  "British (X) vs Spanish-accented (Y) neutral words of Romero-Rivas et al. (2022), 16 words in 2 "
                  "recorded versions"),
)
"""The 12 published configurations in the paper's order (T1-T12)."""

BATTERY_BY_ID: Mapping[str, PublishedTest] = MappingProxyType({test.test_id: test for test in BATTERY})
BATTERY_TEST_IDS = tuple(BATTERY_BY_ID)
FURTHER_TEST_IDS = tuple(test_id for test_id in BATTERY_TEST_IDS if test_id not in ("gender", "age", "native"))
"""The nine tests beyond speat's original three."""

EU_EMOTION_CITATION = Citation(
    key="oreilly2016eu",
    text="O'Reilly et al. (2016). The EU-Emotion Stimulus Set: A validation study. Behavior Research Methods 48, "
    "567-576.",
    url="https://doi.org/10.3758/s13428-015-0601-4",
    bibtex="@article{oreilly2016eu,\n  title={The EU-Emotion Stimulus Set: A validation study},\n  author={"
    "O'Reilly, Helen and others},\n  journal={Behavior Research Methods},\n  volume={48},\n  pages={567--576},\n  "
    "year={2016}\n}",
)


@dataclass(frozen=True)
class BatteryClip:
    """A target clip of a further test: its corpus, its path within the corpus folder (`Corpus.layout`), its
    speaker, its sample length in the SpEAT data, and for a segment of a longer file its start and end in seconds."""

    stimulus_id: str
    corpus: str
    path: str
    speaker: str
    sample_length: int
    start: float | None = None
    end: float | None = None


@functools.cache
def _target_rows() -> tuple[dict[str, str], ...]:
    columns = ("test", "role", "stimulus_id", "corpus", "path", "pair_id", "speaker", "sample_length", "start_time",
               "end_time")
    return tuple(read_csv_rows(SELECTIONS_DIR / TARGETS_FILE, columns, layout=f"the SpEAT selection {TARGETS_FILE}"))


@functools.cache
def battery_clips() -> Mapping[str, BatteryClip]:
    """Every target clip of the further tests and every EU-Emotion clip, by stimulus id."""
    clips = {}
    for row in _target_rows():
        clips[row["stimulus_id"]] = BatteryClip(
            row["stimulus_id"], row["corpus"], row["path"], row["speaker"], int(row["sample_length"]),
            float(row["start_time"]) if row["start_time"] else None,
            float(row["end_time"]) if row["end_time"] else None)
    for row in eu_emotion_rows():
        clips[eu_stimulus_id(row["path"])] = BatteryClip(eu_stimulus_id(row["path"]), "eu_emotion", row["path"],
                                                         row["speaker_id"], int(row["sample_length"]))
    return MappingProxyType(clips)


def eu_stimulus_id(path: str) -> str:
    """``eu_emotion/<file stem>`` of an EU-Emotion clip, e.g. ``eu_emotion/fix__OV3H``."""
    return f"eu_emotion/{Path(path).stem}"


@functools.cache
def eu_emotion_rows() -> tuple[dict[str, str], ...]:
    """The 683 existing EU-Emotion voice clips in the SpEAT ``all.tsv`` order, with ``valence_rank`` and
    ``neutral_position`` (TESTS.md §3.2)."""
    return tuple(read_csv_rows(SELECTIONS_DIR / EU_EMOTION_FILE, (
        "position", "path", "speaker_id", "semantically_neutral", "valence", "sample_length", "neutral_position",
        "valence_rank"), layout=f"the SpEAT selection {EU_EMOTION_FILE}"))


def eu_emotion_groups(*, positional: bool = False) -> tuple[StimulusGroup, StimulusGroup]:
    """The EU-Emotion attributes: per actor the 3 semantically neutral clips rated highest in valence (A) and the 3
    lowest (B), 54 each.

    Args:
        positional: reproduce the SpEAT code instead (``--profile speat2023``): take the clips at the all.tsv rows
            whose numbers are the labelled clips' positions *within the semantically neutral subset*.

    Example:
        >>> design, code = eu_emotion_groups(), eu_emotion_groups(positional=True)
        >>> len(design[0]), len(code[0]), design[0].stimulus_ids == code[0].stimulus_ids
        (54, 54, False)
    """
    rows = eu_emotion_rows()
    groups = []
    for role, name, rank in (("A", ATTRIBUTE_GROUPS[0], "high_valence"), ("B", ATTRIBUTE_GROUPS[1], "low_valence")):
        labelled = [row for row in rows if row["valence_rank"] == rank]
        if positional:
            chosen = [rows[int(row["neutral_position"])] for row in labelled]
            rule = (f"the all.tsv rows at the positions, within the semantically neutral subset, of the 3 neutral "
                    f"clips per actor with the {'highest' if role == 'A' else 'lowest'} valence (as the SpEAT code "
                    "indexes them; --profile speat2023)")
        else:
            chosen = labelled
            rule = (f"for each of the 18 actors, the 3 semantically neutral clips with the "
                    f"{'highest' if role == 'A' else 'lowest'} mean valence rating")
        groups.append(StimulusGroup(role, name, tuple(eu_stimulus_id(row["path"]) for row in chosen), rule))
    return groups[0], groups[1]


def _saa_group(file_name: str, role: str, name: str, keep: str | None, description: str) -> StimulusGroup:
    rows = read_csv_rows(SELECTIONS_DIR / file_name, ("name", "age_rank") if keep else ("name",),
                         layout=f"the SpEAT selection {file_name}")
    chosen = [row for row in rows if keep is None or row["age_rank"] == keep]
    return StimulusGroup(role, name, tuple(saa_stimulus_id(row["name"]) for row in chosen), description)


def _pairs(test_id: str) -> tuple[tuple[str, str], ...]:
    members: dict[str, dict[str, str]] = {}
    for row in _target_rows():
        if row["test"] == test_id and row["pair_id"]:
            members.setdefault(row["pair_id"], {})[row["role"]] = row["stimulus_id"]
    bad = [pair_id for pair_id, pair in members.items() if sorted(pair) != ["X", "Y"]]
    if bad:
        raise StimulusError(f"{TARGETS_FILE}: pair_id {bad[0]} of test {test_id!r} must join one X and one Y "
                            "stimulus; reinstall speat")
    return tuple((pair["X"], pair["Y"]) for _, pair in sorted(members.items(), key=lambda item: int(item[0])))


def _listed_group(test: PublishedTest, role: str) -> StimulusGroup:
    ids = tuple(row["stimulus_id"] for row in _target_rows() if row["test"] == test.test_id and row["role"] == role)
    titles = ", ".join(sorted({CORPORA[battery_clips()[stimulus_id].corpus].title for stimulus_id in ids}))
    return StimulusGroup(role, test.x if role == "X" else test.y, ids, f"{role} of {test.label} ({titles})")


@functools.cache
@functools.cache
def get_speat_test(name: str, *, profile: str | None = None) -> SpeatTestSpec:
    """A published SpEAT test with its groups, pairs and citations: ``"gender"``, ``"age"``, ``"native"`` (speat's
    original tests, `speat_metric.stimuli.selections.original_test`) or one of the nine further ones
    (`FURTHER_TEST_IDS`, e.g. ``"disability-torgo"``).

    Args:
        profile: the extraction profile (``speat evaluate --profile``; None: the default). Only the EU-Emotion
            attributes of ``age-uk`` and ``accent-romero-rivas`` depend on it (``eu_emotion_positions``).

    Example:
        >>> spec = get_speat_test("age")
        >>> spec.x.name, spec.y.name, spec.sizes
        ('young', 'old', {'X': 58, 'Y': 58, 'A': 60, 'B': 60})
    """
    if name in FURTHER_TEST_IDS:
        from speat_metric.profiles import DEFAULT_PROFILE, get_profile

        return battery_test(name, eu_emotion_positions=get_profile(profile or DEFAULT_PROFILE).eu_emotion_positions)
    if name in TEST_NAMES:
        return original_test(name)
    raise StimulusError(f"unknown SpEAT test {name!r}: choose one of {', '.join(BATTERY_TEST_IDS)} (`speat stimuli "
                        "list` shows them), or build your own with SpeatTestSpec.from_files(...)")


def published_tests(*, profile: str | None = None) -> dict[str, SpeatTestSpec]:
    """All 12 published tests, by speat test id, in the paper's order (T1-T12; `gender` is T6, `native` T8, `age`
    T10)."""
    return {name: get_speat_test(name, profile=profile) for name in BATTERY_TEST_IDS}


def battery_test(test_id: str, *, eu_emotion_positions: bool = False) -> SpeatTestSpec:
    """One of the nine further published tests (`FURTHER_TEST_IDS`) as a `SpeatTestSpec`; `eu_emotion_positions`
    selects the SpEAT code's EU-Emotion rows (see `eu_emotion_groups`; only ``age-uk`` and ``accent-romero-rivas``
    use EU-Emotion).

    Example:
        >>> battery_test("disability-torgo").sizes, len(battery_test("disability-torgo").pairs)
        ({'X': 60, 'Y': 60, 'A': 60, 'B': 60}, 60)
    """
    if test_id not in FURTHER_TEST_IDS:
        raise StimulusError(f"unknown published SpEAT test {test_id!r}: choose one of {', '.join(BATTERY_TEST_IDS)}")
    test = BATTERY_BY_ID[test_id]
    if test_id == "synthetic-saa":
        x = _saa_group(HUMAN_SYNTHESIZED_FILE, "X", test.x, None,
                       "US-born native English SAA speakers, sampled to match the voices' sex counts")
        y = _listed_group(test, "Y")
    elif test_id == "age-uk":
        x = _saa_group(BRITISH_FILE, "X", test.x, "low_age", "native English SAA speakers born in the U.K. or "
                       "Ireland aged 18-21")
        y = _saa_group(BRITISH_FILE, "Y", test.y, "high_age", "native English SAA speakers born in the U.K. or "
                       "Ireland aged 38-72")
    else:
        x, y = _listed_group(test, "X"), _listed_group(test, "Y")
    if test.attributes == "eu_emotion":
        a, b = eu_emotion_groups(positional=eu_emotion_positions)
        citations: tuple[Citation, ...] = (SPEAT_CITATION, EU_EMOTION_CITATION)
    else:
        a, b = attribute_groups()
        citations = (SPEAT_CITATION, MESS_CITATION)
    if "saa" in test.corpora:
        citations = (citations[0], SAA_CITATION, *citations[1:])
    attributes = ("EU-Emotion Stimulus Set" if test.attributes == "eu_emotion" else "Morgan Emotional Speech Set")
    description = (f"{test.label} of Slaughter et al. (2023), {test.title}: {test.description}; attributes "
                   f"pleasant (A) vs unpleasant (B) speech of the {attributes}.")
    return SpeatTestSpec(name=test_id, description=description, x=x, y=y, a=a, b=b, pairs=_pairs(test_id),
                         citations=citations)


def corpora_of(test_id: str) -> tuple[Corpus, ...]:
    """The corpora a published test's audio comes from (targets, then attributes)."""
    return tuple(CORPORA[name] for name in BATTERY_BY_ID[test_id].audio_corpora)


def selection_files(test_id: str) -> tuple[str, ...]:
    """The packaged selection files a published test is built from (what its provenance pins)."""
    test = BATTERY_BY_ID[test_id]
    files = [TARGETS_FILE] if test_id not in ("age-uk",) else []
    files += {"synthetic-saa": [HUMAN_SYNTHESIZED_FILE], "age-uk": [BRITISH_FILE]}.get(test_id, [])
    files += [EU_EMOTION_FILE] if test.attributes == "eu_emotion" else [ATTRIBUTES_FILE, RATINGS_FILE]
    return tuple(files)


def corpus_directory(corpus: str, *, corpora: Mapping[str, str | os.PathLike] | None = None,
                     stimuli_dir: str | os.PathLike | None = None) -> Path | None:
    """The folder of the user's copy of `corpus`: ``corpora[corpus]``, else ``$SPEAT_CORPUS_<NAME>``, else
    ``<stimuli_dir>/<corpus>`` if that is a folder; None when there is none.

    Raises:
        StimulusError: a folder named by `corpora` or the environment does not exist (one line naming it).
    """
    given = (corpora or {}).get(corpus)
    where = f"--corpus {corpus}"
    if given is None and os.environ.get(CORPORA[corpus].env):
        given, where = os.environ[CORPORA[corpus].env], f"${CORPORA[corpus].env}"
    if given is not None:
        path = Path(given).expanduser()
        if not path.is_dir():
            raise StimulusError(f"{where} = {str(given)!r} is not a folder; give the folder of your "
                                f"{CORPORA[corpus].title} copy, laid out as {CORPORA[corpus].layout}")
        return path
    if stimuli_dir is not None and (Path(stimuli_dir) / corpus).is_dir():
        return Path(stimuli_dir) / corpus
    return None


class CorpusUnavailableError(StimulusError):
    """A test needs a corpus speat cannot fetch and no copy of it was found: one line naming the corpus, where to
    get it, and the folder layout speat expects."""

    def __init__(self, test_id: str, corpus: Corpus) -> None:
        self.test_id = test_id
        self.corpus = corpus
        if corpus.access == DOWNLOADABLE:
            why = (f"which speat downloads from {corpus.where} with --stimuli speat (or `speat stimuli download "
                   f"--tests {test_id}`), but this source has no copy of it")
        else:
            why = f"which speat cannot download: {corpus.where}"
        super().__init__(f"test {test_id!r} needs the {corpus.title}, {why}; then give its folder with --corpus "
                         f"{corpus.name}=DIR, {corpus.env}=DIR or put it at <--stimuli DIR>/{corpus.name}/, laid out "
                         f"as {corpus.layout}")


CACHED_PATHS = {"synthesized": "human_synthesized/{}.wav", "coraal": "coraal/{}.wav", "torgo": "torgo/{}.wav"}
"""Where `speat_metric.stimuli.corpora` keeps a downloadable corpus's clips in the stimulus cache."""


def audio_status(test_id: str, *, stimuli_dir: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None) -> str:
    """Whether a published test's audio is available here, per corpus: ``cached`` (every clip is in the stimulus
    cache), ``downloadable`` (SAA, MESS), ``user copy found`` (a corpus folder, see `corpus_directory`),
    ``downloadable (<where>)`` (synthesized voices, CORAAL, TORGO: fetched by ``speat stimuli download`` or
    ``speat evaluate --stimuli speat``) or ``needs <corpus>``.

    Example:
        >>> audio_status("disability-uaspeech", cache_dir="/nonexistent").split(";")[0]
        'UA-Speech: needs a copy (request it from the UIUC ISLE group, http://www.isle.illinois.edu/sst/data/UASpeech/)'
    """
    from speat_metric.stimuli.download import Manifest
    from speat_metric.stimuli.public import default_cache_dir

    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    entries = Manifest(cache).entries  # sizes only: hashing every cached clip would make the listing slow
    ids = get_speat_test(test_id).stimulus_ids
    states = []
    for corpus in corpora_of(test_id):
        if corpus.access == PUBLIC:
            relative = {"saa": "saa/{}.mp3", "mess": "mess/{}_SCR.wav"}[corpus.name]
            wanted = [s.partition("/")[2] for s in ids if s.startswith(corpus.name + "/")]
            cached = all(relative.format(n) in entries and (cache / relative.format(n)).is_file()
                         and (cache / relative.format(n)).stat().st_size == entries[relative.format(n)].size
                         for n in wanted)
            state = "cached" if cached else "downloadable"
        elif corpus_directory(corpus.name, stimuli_dir=stimuli_dir) is not None:
            state = "user copy found"
        elif corpus.access == DOWNLOADABLE:
            relative = CACHED_PATHS[corpus.name]
            wanted = [s.partition("/")[2] for s in ids if s.startswith(corpus.name + "/")]
            cached = all(relative.format(n) in entries and (cache / relative.format(n)).is_file() for n in wanted)
            state = "cached" if cached else f"downloadable ({corpus.where})"
        else:
            state = f"needs a copy ({corpus.where})"
        states.append(f"{corpus.title}: {state}")
    return "; ".join(dict.fromkeys(states))
