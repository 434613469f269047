"""Generate the synthetic demo stimulus set shipped in speat_metric/data/demo/.

THIS IS A SYNTHETIC PIPELINE CHECK, NOT A BIAS MEASUREMENT. Every clip is made by a rule-based speech synthesiser;
a SpEAT effect size computed on it says how a model separates synthesiser settings, not how it treats people. It
exists so that ``speat evaluate`` runs end to end, offline, on a fresh machine.

The set mirrors the real SpEAT design (Speech Accent Archive targets, Morgan Emotional Speech Set attributes):

- Targets read sentences of the Speech Accent Archive paragraph ("Please call Stella..."), split into six chunks
  of about 2-5 s. Every target group has 12 clips: 12 different voices, each chunk read by two of them, with the
  same fixed schedule of pitch and speed offsets in both groups of a test, so that the two groups differ in the
  property under test and not in text or prosody schedule.
- gender: female vs male. 12 stock espeak-ng female variants (``en-us+f2``, ``+Alicia``, ``+steph`` ...) vs 12
  male variants (``en-us+m2``, ``+Andy``, ``+john`` ...); neutral pitch and speed.
- age: young vs old, 6 female + 6 male voices in each group (as in the real design). espeak-ng has no child
  voice, so young is made with raised pitch, faster speech and a shorter vocal tract (sox ``speed`` raises pitch and
  formants together, ``tempo`` restores the duration). Old uses the aged variants (``grandma``, ``grandpa``,
  ``croak``, ``f1``, ``m1``, ``m8``: pitch flutter and roughness) plus others, with lower pitch, slower speech, a
  longer vocal tract and a 4-7 Hz amplitude tremor (sox ``tremolo``).
- native: us vs korean. The same 12 variants in both groups: ``en-us+<variant>`` reads the English text; the Korean
  voice ``ko+<variant>`` reads a Hangul transliteration of it ("플리즈 콜 스텔라"), which gives Korean phonology:
  epenthetic vowels, no /f v z th/ contrasts, Korean stress and intonation. (Given Latin text, espeak-ng's Korean
  voice switches to its English rules, so a transliteration is needed.)
- attributes (shared by the three tests, as MESS is): MESS-like sentences "Michael/Theo/Victor discussed the X and
  the Y today" read by 6 talkers (3 female, 3 male), each talker saying the same 2 sentences once with pleasant and
  once with unpleasant prosody. Pleasant is happy-like (high pitch, wide pitch range, fast) or calm-like (medium
  pitch, moderate range and speed); unpleasant is sad-like (low, flat, slow) or angry-like (low, narrowed range,
  harsh: sox ``overdrive``). Pitch range is set with SSML ``<prosody range>``.

Every clip is trimmed to its speech plus 0.1 s, resampled to 16 kHz mono with soxr, normalised to the same loudness
(-20 dBFS RMS over its speech frames, peak at most -1 dBFS) so that loudness is not a cue, and stored as VBR MP3,
the format of the Speech Accent Archive (lossless FLAC would make the set 6 MB instead of 2.5 MB).
The script also writes ``metadata.csv`` (format in speat_metric/data/demo/README.md) and that README.

Requirements: espeak-ng (1.51 made the committed set) and sox, e.g. ``apt-get install -y espeak-ng sox``.
The output depends only on those tools' versions: the order and every parameter are fixed, so running the script
twice gives the same files. It builds the set in a staging directory next to the output and swaps it in only when
every clip has been made, so a failed run leaves the previous set untouched.

    python scripts/make_demo_stimuli.py [--output DIR]
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr
from tqdm import tqdm

from speat_metric.audio import DEFAULT_SAMPLING_RATE as SAMPLING_RATE
from speat_metric.files import atomic_write_text

logger = logging.getLogger("make_demo_stimuli")

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "speat_metric" / "data" / "demo"
AUDIO_EXTENSION = "mp3"
# MP3 as the Speech Accent Archive ships it; VBR at this libsndfile level keeps the set near 2.5 MB (FLAC: 6 MB).
MP3_COMPRESSION_LEVEL = 0.3
METADATA_COLUMNS = (
    "stimulus_id", "file_name", "test", "role", "group", "voice", "text",
    "pitch", "speed", "sex", "age_group", "accent", "valence", "seconds",
)
TARGET_TESTS = {  # test -> (X group, Y group); X is the group the published orientation puts first
    "gender": ("female", "male"),
    "age": ("young", "old"),
    "native": ("us", "korean"),
}
ATTRIBUTE_GROUPS = ("pleasant", "unpleasant")  # A, B

# The Speech Accent Archive paragraph in six chunks, and the Hangul transliterations the Korean voice reads.
TARGET_SENTENCES = (
    "Please call Stella. Ask her to bring these things with her from the store.",
    "Six spoons of fresh snow peas, five thick slabs of blue cheese.",
    "And maybe a snack for her brother Bob.",
    "We also need a small plastic snake and a big toy frog for the kids.",
    "She can scoop these things into three red bags.",
    "And we will go meet her Wednesday at the train station.",
)
KOREAN_READINGS = {
    TARGET_SENTENCES[0]: "플리즈 콜 스텔라. 애스크 허 투 브링 디즈 띵스 위드 허 프롬 더 스토어.",
    TARGET_SENTENCES[1]: "식스 스푼스 오브 프레쉬 스노우 피즈, 파이브 띡 슬랩스 오브 블루 치즈.",
    TARGET_SENTENCES[2]: "앤드 메이비 어 스낵 포 허 브라더 밥.",
    TARGET_SENTENCES[3]: "위 올소 니드 어 스몰 플라스틱 스네이크 앤드 어 빅 토이 프로그 포 더 키즈.",
    TARGET_SENTENCES[4]: "쉬 캔 스쿱 디즈 띵스 인투 쓰리 레드 백스.",
    TARGET_SENTENCES[5]: "앤드 위 윌 고 미트 허 웬즈데이 앳 더 트레인 스테이션.",
}
# MESS template with our own neutral noun pairs; each sentence is said once pleasantly and once unpleasantly.
ATTRIBUTE_SENTENCES = tuple(
    f"{name} discussed the {first} and the {second} today."
    for name, first, second in (
        ("Michael", "map", "lamp"), ("Theo", "budget", "schedule"), ("Victor", "window", "door"),
        ("Michael", "garden", "fence"), ("Theo", "report", "letter"), ("Victor", "kettle", "cups"),
        ("Michael", "engine", "wheels"), ("Theo", "carpet", "curtains"), ("Victor", "bridge", "tunnel"),
        ("Michael", "printer", "paper"), ("Theo", "album", "poster"), ("Victor", "ladder", "bucket"),
    )
)

# espeak-ng variants (voices/!v/) and their sex. Lists of 12 are ordered 6 female then 6 male where a group mixes.
FEMALE_VARIANTS = frozenset({
    "f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "anika", "aunty", "belinda", "grandma", "linda",
    "steph", "steph2", "steph3",
})
MALE_VARIANTS = frozenset({
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "Andy", "croak", "grandpa", "john", "Michael", "norbert",
    "paul", "quincy", "robert", "travis",
})
NATIVE_VARIANTS = ("f2", "f3", "f5", "Andrea", "steph3", "linda", "m2", "m5", "m7", "Andy", "robert", "norbert")
GROUP_VARIANTS = {
    ("gender", "female"): ("f2", "f3", "f4", "f5", "Alicia", "Andrea", "aunty", "belinda", "linda", "steph",
                           "steph2", "steph3"),
    ("gender", "male"): ("m2", "m3", "m4", "m5", "m6", "m7", "Andy", "john", "robert", "quincy", "Michael",
                         "norbert"),
    ("age", "young"): ("f2", "Andrea", "belinda", "steph2", "linda", "Alicia",
                       "m3", "m6", "Andy", "john", "Michael", "quincy"),
    ("age", "old"): ("f1", "grandma", "f3", "f5", "steph", "aunty",
                     "m1", "croak", "grandpa", "m8", "m2", "robert"),
    ("native", "us"): NATIVE_VARIANTS,  # the same voices in both groups: only language and phonology differ
    ("native", "korean"): NATIVE_VARIANTS,
}
ATTRIBUTE_TALKERS = ("Annie", "anika", "f4", "paul", "travis", "m4")  # like MESS: 3 female, 3 male

# One fixed schedule of offsets, applied in the same order to both groups of a test. Each test starts it at its own
# place, so that a voice used by two tests (f2 reads chunk 1 in gender and native) never yields the same clip twice.
PITCH_OFFSETS = (0, 6, -4, 9, -7, 3, -2, 7, -9, 4, -5, 1)  # espeak-ng -p units (0-99, default 50)
SPEED_OFFSETS = (0, -8, 6, -3, 10, -6, 4, -10, 8, 2, -4, 5)  # words per minute (default 175)
SCHEDULE_START = {"gender": 0, "age": 4, "native": 8, "attributes": 0}
# Vocal-tract scale (sox speed, duration restored by tempo) and amplitude tremor, cycled over the 6 voices per sex.
YOUNG_TRACT_SCALES = (1.12, 1.16, 1.20, 1.14, 1.18, 1.22)
OLD_TRACT_SCALES = (0.94, 0.96, 0.92, 0.95, 0.93, 0.97)
OLD_TREMOLO = ((5.0, 30), (4.5, 35), (6.0, 25), (5.5, 40), (4.0, 30), (6.5, 35))  # (Hz, depth %)


@dataclass(frozen=True)
class Prosody:
    """Base pitch and speed of a group (offsets are added per clip) and its SSML range and sox effects."""

    pitch: int
    speed: int
    ssml_range: str | None = None
    sox_effects: tuple[str, ...] = ()
    description: str = ""


NEUTRAL = Prosody(pitch=50, speed=170)
YOUNG = Prosody(pitch=68, speed=185)
OLD = Prosody(pitch=35, speed=138)
ATTRIBUTE_STYLES = {  # (group, style) in the order the clips use them: first 6 clips, then the next 6
    "pleasant": (Prosody(72, 190, "+80%", (), "happy-like"), Prosody(55, 155, "+30%", (), "calm-like")),
    "unpleasant": (Prosody(28, 120, "-80%", (), "sad-like"),
                   Prosody(36, 180, "-40%", ("overdrive", "12", "20"), "angry-like")),
}


@dataclass(frozen=True)
class ClipPlan:
    """Everything needed to synthesise one clip and describe it in metadata.csv.

    Attributes:
        stimulus_id: e.g. ``demo-gender-female-01``.
        test: ``gender``, ``age``, ``native`` or ``attributes``.
        role: ``X``, ``Y``, ``A`` or ``B``.
        group: group name, the same as in the real tests.
        espeak_voice: espeak-ng voice and variant, e.g. ``en-us+f2``.
        text: what the clip says (English).
        spoken_text: what espeak-ng is given (a Hangul transliteration for the Korean voice).
        pitch: espeak-ng ``-p`` (0-99).
        speed: espeak-ng ``-s`` (words per minute).
        sex, age_group, accent, valence: the clip's labels (valence empty for targets).
        ssml_range: SSML ``<prosody range>`` value, or None.
        sox_effects: sox effect chain applied after synthesis (empty for none).
        treatment: human-readable note on the manipulation, for the ``voice`` column.
    """

    stimulus_id: str
    test: str
    role: str
    group: str
    espeak_voice: str
    text: str
    spoken_text: str
    pitch: int
    speed: int
    sex: str
    age_group: str
    accent: str
    valence: str
    ssml_range: str | None
    sox_effects: tuple[str, ...]
    treatment: str

    @property
    def file_name(self) -> str:
        """Path of the audio file relative to the demo directory."""
        return f"audio/{self.stimulus_id}.{AUDIO_EXTENSION}"

    @property
    def voice(self) -> str:
        """Synthesiser, voice/variant and any manipulation, as written to the ``voice`` column."""
        parts = [f"espeak-ng {self.espeak_voice}"]
        if self.treatment:
            parts.append(self.treatment)
        if self.ssml_range:
            parts.append(f"SSML range {self.ssml_range}")
        if self.sox_effects:
            parts.append("sox " + " ".join(self.sox_effects))
        return "; ".join(parts)


def stimulus_id(test: str, group: str, number: int) -> str:
    """Return the id of the `number`-th (1-based) clip of `group` in `test`.

    Example:
        >>> stimulus_id("gender", "female", 1)
        'demo-gender-female-01'
    """
    if number < 1:
        raise ValueError(f"clip numbers start at 1, got {number}")
    return f"demo-{test}-{group}-{number:02d}"


def variant_sex(variant: str) -> str:
    """Return ``female`` or ``male`` for an espeak-ng variant listed in this script."""
    if variant in FEMALE_VARIANTS:
        return "female"
    if variant in MALE_VARIANTS:
        return "male"
    raise ValueError(f"espeak-ng variant {variant!r} has no sex listed: add it to FEMALE_VARIANTS or MALE_VARIANTS")


def _offset(schedule: tuple[int, ...], test: str, index: int) -> int:
    """Return the offset of clip `index` in `test`: the schedule read from the test's own starting place."""
    return schedule[(SCHEDULE_START[test] + index) % len(schedule)]


def _target_prosody(test: str, group: str, index: int) -> tuple[Prosody, str]:
    """Return the group's prosody for clip `index` (0-based), with its sox effects and treatment note filled in."""
    if test != "age":
        return NEUTRAL, ("Hangul transliteration" if group == "korean" else "")
    if group == "young":
        scale = YOUNG_TRACT_SCALES[index % 6]
        effects = ("speed", f"{scale:.2f}", "tempo", f"{1 / scale:.4f}")
        return Prosody(YOUNG.pitch, YOUNG.speed, None, effects), f"young: pitch and formants x{scale:.2f}"
    scale = OLD_TRACT_SCALES[index % 6]
    rate, depth = OLD_TREMOLO[index % 6]
    effects = ("speed", f"{scale:.2f}", "tempo", f"{1 / scale:.4f}", "tremolo", f"{rate}", f"{depth}")
    return Prosody(OLD.pitch, OLD.speed, None, effects), f"old: pitch and formants x{scale:.2f}, tremor"


def plan_target_clips(test: str, group: str, role: str) -> list[ClipPlan]:
    """Plan the 12 clips of one target group: one per voice, chunk ``index % 6`` of the paragraph."""
    clips = []
    for index, variant in enumerate(GROUP_VARIANTS[(test, group)]):
        prosody, treatment = _target_prosody(test, group, index)
        text = TARGET_SENTENCES[index % len(TARGET_SENTENCES)]
        korean = group == "korean"
        clips.append(ClipPlan(
            stimulus_id=stimulus_id(test, group, index + 1), test=test, role=role, group=group,
            espeak_voice=f"{'ko' if korean else 'en-us'}+{variant}", text=text,
            spoken_text=KOREAN_READINGS[text] if korean else text,
            pitch=prosody.pitch + _offset(PITCH_OFFSETS, test, index),
            speed=prosody.speed + _offset(SPEED_OFFSETS, test, index),
            sex=variant_sex(variant), age_group=group if test == "age" else "adult",
            accent="korean" if korean else "us", valence="",
            ssml_range=prosody.ssml_range, sox_effects=prosody.sox_effects, treatment=treatment,
        ))
    return clips


def plan_attribute_clips(group: str, role: str) -> list[ClipPlan]:
    """Plan the 12 clips of one attribute group: sentence k by talker ``k % 6``, first style for k < 6."""
    clips = []
    for index, text in enumerate(ATTRIBUTE_SENTENCES):
        variant = ATTRIBUTE_TALKERS[index % len(ATTRIBUTE_TALKERS)]
        prosody = ATTRIBUTE_STYLES[group][index // 6]
        clips.append(ClipPlan(
            stimulus_id=stimulus_id("attributes", group, index + 1), test="attributes", role=role, group=group,
            espeak_voice=f"en-us+{variant}", text=text, spoken_text=text,
            pitch=prosody.pitch + _offset(PITCH_OFFSETS, "attributes", index),
            speed=prosody.speed + _offset(SPEED_OFFSETS, "attributes", index),
            sex=variant_sex(variant), age_group="adult", accent="us", valence=group,
            ssml_range=prosody.ssml_range, sox_effects=prosody.sox_effects, treatment=prosody.description,
        ))
    return clips


def plan_demo_set() -> list[ClipPlan]:
    """Plan every clip of the demo set, in metadata order (gender, age, native, attributes; X/A before Y/B).

    Pure: no synthesiser is run, so tests can compare the plan with the committed metadata.csv.
    """
    clips = []
    for test, (first, second) in TARGET_TESTS.items():
        clips += plan_target_clips(test, first, "X") + plan_target_clips(test, second, "Y")
    pleasant, unpleasant = ATTRIBUTE_GROUPS
    return clips + plan_attribute_clips(pleasant, "A") + plan_attribute_clips(unpleasant, "B")


def metadata_row(clip: ClipPlan, seconds: float) -> dict[str, str]:
    """Return the metadata.csv row of `clip`, whose finished audio lasts `seconds`."""
    return {
        "stimulus_id": clip.stimulus_id, "file_name": clip.file_name, "test": clip.test, "role": clip.role,
        "group": clip.group, "voice": clip.voice, "text": clip.text, "pitch": str(clip.pitch),
        "speed": str(clip.speed), "sex": clip.sex, "age_group": clip.age_group, "accent": clip.accent,
        "valence": clip.valence, "seconds": f"{seconds:.3f}",
    }


def metadata_csv(rows: Sequence[dict[str, str]]) -> str:
    """Render rows as metadata.csv text (header first, ``\\n`` line ends)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METADATA_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def finish_clip(samples: np.ndarray, sampling_rate: int, *, margin_seconds: float = 0.1,
                target_rms_db: float = -20.0, peak_db: float = -1.0) -> np.ndarray:
    """Resample a mono clip to 16 kHz, trim it to its speech plus a margin and normalise its loudness.

    Speech frames are 10 ms frames within 40 dB of the loudest frame. The gain sets their RMS to `target_rms_db`
    dBFS, lowered if needed so the peak stays at or below `peak_db` dBFS.

    Args:
        samples: mono waveform, float, any scale.
        sampling_rate: rate of `samples` in Hz.
        margin_seconds: silence kept before the first and after the last speech frame.
        target_rms_db: RMS level of the speech frames after normalisation, dBFS.
        peak_db: ceiling of the absolute peak, dBFS.

    Returns:
        float32 waveform at 16 kHz.

    Raises:
        ValueError: if `samples` is not 1-D or is silent.
    """
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 1:
        raise ValueError(f"finish_clip takes a mono waveform, got shape {samples.shape}")
    if sampling_rate != SAMPLING_RATE:
        samples = soxr.resample(samples, sampling_rate, SAMPLING_RATE, quality="VHQ")
    frame = SAMPLING_RATE // 100
    usable = len(samples) // frame * frame
    frame_rms = np.sqrt(np.mean(samples[:usable].reshape(-1, frame) ** 2, axis=1))
    if usable == 0 or not frame_rms.max() > 0:
        raise ValueError(f"finish_clip got a silent or sub-10 ms clip ({len(samples)} samples at {SAMPLING_RATE} Hz): "
                         "the synthesiser produced no speech; check the voice and text")
    speech = np.flatnonzero(frame_rms >= frame_rms.max() * 10 ** (-40 / 20))
    margin = int(round(margin_seconds * SAMPLING_RATE))
    start = max(0, speech[0] * frame - margin)
    stop = min(len(samples), (speech[-1] + 1) * frame + margin)
    speech_rms = np.sqrt(np.mean(frame_rms[speech] ** 2))
    gain = 10 ** (target_rms_db / 20) / speech_rms
    trimmed = samples[start:stop]
    gain = min(gain, 10 ** (peak_db / 20) / np.abs(trimmed).max())
    return (trimmed * gain).astype(np.float32)


def _run(command: Sequence[str]) -> None:
    """Run an external tool; raise with its stderr if it fails."""
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)!r} failed ({completed.returncode}): {completed.stderr.strip()}")


def synthesise(clip: ClipPlan, work_dir: Path) -> tuple[np.ndarray, int]:
    """Run espeak-ng (and sox when the clip has effects) for `clip`; return the raw waveform and its rate."""
    raw = work_dir / f"{clip.stimulus_id}.espeak.wav"
    if clip.ssml_range:
        command = ["espeak-ng", "-m", "-v", clip.espeak_voice, "-p", str(clip.pitch), "-s", str(clip.speed),
                   "-w", str(raw), f'<speak><prosody range="{clip.ssml_range}">{clip.spoken_text}</prosody></speak>']
    else:
        command = ["espeak-ng", "-v", clip.espeak_voice, "-p", str(clip.pitch), "-s", str(clip.speed),
                   "-w", str(raw), clip.spoken_text]
    _run(command)
    if clip.sox_effects:
        processed = work_dir / f"{clip.stimulus_id}.sox.wav"
        # -D: no dither, 32-bit float output, so sox adds no randomness or requantisation.
        _run(["sox", "-D", str(raw), "-e", "floating-point", "-b", "32", str(processed), *clip.sox_effects])
        raw = processed
    samples, rate = soundfile.read(raw, dtype="float64")
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    return samples, rate


def check_tools(clips: Sequence[ClipPlan]) -> str:
    """Check espeak-ng, sox and every variant the plan uses are installed; return the tools' versions.

    Raises:
        RuntimeError: naming the missing tool or variant and how to install it.
    """
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed; install it with `apt-get install -y espeak-ng sox`")
    listing = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    installed = {line.split()[-1].removeprefix("!v/") for line in listing.splitlines()[1:] if line.strip()}
    missing = sorted({clip.espeak_voice.split("+")[1] for clip in clips} - installed)
    if missing:
        raise RuntimeError(f"espeak-ng variants {missing} are not installed; this script needs espeak-ng's stock "
                           "variant set (Debian package espeak-ng-data)")
    espeak = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    sox = subprocess.run(["sox", "--version"], capture_output=True, text=True, check=True).stdout
    # "eSpeak NG text-to-speech: 1.51  Data at: ..." and "sox:      SoX v14.4.2"
    return f"espeak-ng {espeak.split(':')[1].split()[0]}, SoX {sox.split()[-1]}"


def render_readme(rows: Sequence[dict[str, str]], tool_versions: str) -> str:
    """Return the README.md of the demo directory: what the set is, how it was made, its format and counts."""
    counts = {}
    for row in rows:
        key = (row["test"], row["role"], row["group"])
        counts[key] = counts.get(key, 0) + 1
    count_lines = "\n".join(f"| {test} | {role} | {group} | {count} |" for (test, role, group), count in counts.items())
    seconds = sum(float(row["seconds"]) for row in rows)
    voices = "\n".join(
        f"| {test} | {group} | {', '.join(variants)} |" for (test, group), variants in GROUP_VARIANTS.items()
    )
    style_list = [(group, style) for group in ATTRIBUTE_GROUPS for style in ATTRIBUTE_STYLES[group]]
    styles = [style.description for _, style in style_list]
    style_lines = "\n".join(
        f"| {group} | {style.description} | {style.pitch} | {style.speed} | {style.ssml_range} | "
        f"{' '.join(style.sox_effects) or '-'} |" for group, style in style_list
    )
    readings = "\n".join(f"| {text} | {KOREAN_READINGS[text]} |" for text in TARGET_SENTENCES)
    return f"""# SpEAT demo stimuli: a SYNTHETIC PIPELINE CHECK, NOT A BIAS MEASUREMENT

Every clip here was made by a rule-based speech synthesiser (espeak-ng). These clips let `speat evaluate` run end to
end, offline, on a fresh machine. An effect size computed on them says how a model separates synthesiser settings
(variants, pitch, speed, sox effects); it says nothing about how the model treats real female, male, young, old,
US or Korean speakers. Do not report it as a bias measurement. For that, use the real stimuli (Speech Accent
Archive targets, Morgan Emotional Speech Set attributes).

Generated by `scripts/make_demo_stimuli.py` with {tool_versions}; regenerate with
`python scripts/make_demo_stimuli.py` (needs `apt-get install -y espeak-ng sox`). The script's docstring is the full
recipe. {len(rows)} clips, {seconds:.0f} s of audio.

## How each group is made

Targets read chunks of the Speech Accent Archive paragraph ("Please call Stella..."). Each target group has 12
voices; chunk `i % 6` is read by voice `i`, and both groups of a test use the same schedule of pitch offsets
({', '.join(map(str, PITCH_OFFSETS))}) and speed offsets ({', '.join(map(str, SPEED_OFFSETS))}), so the groups
differ in the property under test, not in text or prosody schedule. Each test reads the schedule from its own
starting place ({', '.join(f"{test}: offset {start + 1}" for test, start in SCHEDULE_START.items())}), so a voice
used in two tests never gives the same clip twice.

- **gender** (X female, Y male): stock espeak-ng female vs male variants, pitch {NEUTRAL.pitch} and {NEUTRAL.speed}
  words/min plus the offsets.
- **age** (X young, Y old; 6 female + 6 male voices each): espeak-ng has no child voice. Young: pitch {YOUNG.pitch},
  {YOUNG.speed} words/min, pitch and formants raised by a factor {min(YOUNG_TRACT_SCALES)}-{max(YOUNG_TRACT_SCALES)}
  as by a shorter vocal tract (sox `speed`, then `tempo` restores the duration). Old: aged variants (`grandma`,
  `grandpa`, `croak`, `f1`, `m1`, `m8`, with pitch flutter and roughness) and others; pitch {OLD.pitch}, {OLD.speed}
  words/min, pitch and formants lowered by a factor {min(OLD_TRACT_SCALES)}-{max(OLD_TRACT_SCALES)}, and a
  {min(rate for rate, _ in OLD_TREMOLO)}-{max(rate for rate, _ in OLD_TREMOLO)} Hz amplitude tremor (sox `tremolo`).
- **native** (X us, Y korean): the same 12 variants; `en-us+<variant>` reads the English text, the Korean voice
  `ko+<variant>` reads a Hangul transliteration of it, which imposes Korean phonology (epenthetic vowels, no /f v z
  th/ contrasts, Korean intonation). The `text` column holds the English text.
- **attributes** (A pleasant, B unpleasant; shared by the three tests, as MESS is): MESS-like sentences
  ("Michael/Theo/Victor discussed the X and the Y today", our own neutral noun pairs) by 6 talkers
  ({', '.join(ATTRIBUTE_TALKERS)}: 3 female, 3 male); each sentence is said once pleasantly and once unpleasantly by
  the same talker. Sentences 1-6 are {styles[0]} vs {styles[2]}, 7-12 {styles[1]} vs {styles[3]}; pitch range is set
  with SSML `<prosody range>`, harshness with sox `overdrive`:

| group | style | pitch | words/min | SSML range | sox |
|---|---|---|---|---|---|
{style_lines}

Every clip is trimmed to its speech plus 0.1 s, resampled to 16 kHz mono (soxr), normalised to -20 dBFS RMS over
its speech frames (peak at most -1 dBFS) so loudness is not a cue, and stored as VBR MP3 (as the Speech Accent
Archive is; lossless FLAC would take 6 MB instead of about 2.5 MB).

| test | group | espeak-ng variants |
|---|---|---|
{voices}
| attributes | pleasant, unpleasant | {', '.join(ATTRIBUTE_TALKERS)} |

| English text | what the Korean voice reads |
|---|---|
{readings}

## Format

`metadata.csv`, one row per clip: `stimulus_id` (e.g. `demo-gender-female-01`), `file_name` (relative to this
directory, `audio/<stimulus_id>.mp3`), `test` (`gender`, `age`, `native`, or `attributes` for the shared A/B
clips), `role` (`X`, `Y`, `A`, `B`), `group`, `voice` (synthesiser, voice+variant and manipulations), `text` (what
is said, in English), `pitch` (espeak-ng `-p`, 0-99, default 50), `speed` (espeak-ng `-s`, words per minute),
`sex`, `age_group` (`young`/`old` in the age test, else `adult`), `accent` (`us`/`korean`), `valence`
(`pleasant`/`unpleasant` for attributes, else empty), `seconds` (duration of the stored clip).

| test | role | group | clips |
|---|---|---|---|
{count_lines}

## Licence

The audio was synthesised for this project and is distributed under the project's licence (Apache-2.0). The target
text is the Speech Accent Archive elicitation paragraph (accent.gmu.edu); the attribute sentences follow the MESS
sentence template with our own nouns. No recording of a person is included.

This file is written by `scripts/make_demo_stimuli.py`: edit the script and regenerate, not this file.
"""


def build_demo_set(output_dir: Path) -> list[dict[str, str]]:
    """Synthesise every planned clip and replace `output_dir` with the new set, only if every clip succeeded.

    Args:
        output_dir: the demo directory to (re)create, e.g. speat_metric/data/demo.

    Returns:
        The metadata rows written.

    Raises:
        RuntimeError: if a tool or variant is missing or a synthesiser call fails; `output_dir` is then unchanged.
    """
    clips = plan_demo_set()
    tool_versions = check_tools(clips)
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}.staging-"))
    try:
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private; package data must be world-readable
        (staging / "audio").mkdir()
        rows = []
        with tempfile.TemporaryDirectory() as work:
            for clip in tqdm(clips, desc="synthesising demo clips", unit="clip"):
                samples, rate = synthesise(clip, Path(work))
                finished = finish_clip(samples, rate)
                rows.append(metadata_row(clip, write_clip(staging / clip.file_name, finished)))
        atomic_write_text(staging / "metadata.csv", metadata_csv(rows))
        atomic_write_text(staging / "README.md", render_readme(rows, tool_versions))
        for path in staging.rglob("*"):  # temporary files are created private; package data is world-readable
            os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~_umask())
        _swap_in(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("wrote %d clips to %s", len(rows), output_dir)
    return rows


def write_clip(path: Path, samples: np.ndarray) -> float:
    """Encode a finished 16 kHz clip as MP3 at `path`, decode it back to check it, and return its duration in s.

    Raises:
        RuntimeError: if the file does not decode to 16 kHz mono audio of the expected length.
    """
    soundfile.write(path, samples, SAMPLING_RATE, format="MP3", bitrate_mode="VARIABLE",
                    compression_level=MP3_COMPRESSION_LEVEL)
    decoded, rate = soundfile.read(path, dtype="float32", always_2d=True)
    if rate != SAMPLING_RATE or decoded.shape[1] != 1 or abs(len(decoded) - len(samples)) > SAMPLING_RATE // 100:
        raise RuntimeError(f"{path} decodes to {decoded.shape[1]} channel(s) of {len(decoded)} samples at {rate} Hz; "
                           f"expected mono, {len(samples)} samples at {SAMPLING_RATE} Hz: check libsndfile's MP3 "
                           "support")
    return len(decoded) / SAMPLING_RATE


def _umask() -> int:
    """Return the process umask (it can only be read by setting it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _swap_in(staging: Path, output_dir: Path) -> None:
    """Replace `output_dir` by `staging`; the previous set is moved aside first and deleted last."""
    if not output_dir.exists():
        os.replace(staging, output_dir)
        return
    previous = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}.previous-"))
    previous.rmdir()
    os.replace(output_dir, previous)
    try:
        os.replace(staging, output_dir)
    except BaseException:
        os.replace(previous, output_dir)
        raise
    shutil.rmtree(previous)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point: ``python scripts/make_demo_stimuli.py [--output DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="demo directory to (re)create")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    build_demo_set(arguments.output)


if __name__ == "__main__":
    sys.exit(main())
