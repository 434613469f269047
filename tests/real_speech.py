"""Real speech for tests: a Common Voice-shaped table over speech that Debian packages install.

The packages (``.ci/run`` installs them; tests skip with `SKIP_REASON` without them):

* ``asterisk-core-sounds-{en,es,fr,it,ru}-wav``: the same telephone prompts (``auth-thankyou``, ``vm-goodbye``, ...)
  recorded in five languages, one professional voice per language: en_US_f_Allison, es_MX_f_Allison, fr_CA_f_June,
  it_IT_m_Carlo, ru_RU_f_IvrvoiceRU. Since each language has a single speaker, every clip gets its own
  ``client_id`` (``<voice>-<prompt>``): "one clip per speaker" then means one clip per prompt, a stand-in for the
  many speakers of a real corpus. ``gender`` comes from the voice name (``_f_``/``_m_``), ``locale`` and
  ``accents`` (the region) from the folder, ``sentence`` is the prompt's name (the packages ship no transcripts; the
  same name is the same sentence in every language).
* ``codec2-examples``: short English recordings of several speakers; each file is its own ``client_id``; ``gender``
  is given only where the file name says it (``forig``/``f2400`` female, ``morig``/``m2400`` male), as Common Voice
  leaves it empty when unknown.

`write_emotion_table` adds an attribute table over the English prompts, with a ``valence`` (1-9) and an ``emotion``
column set by what each prompt says (a thank-you is pleasant, an error is unpleasant): the fixture's stand-in for an
emotional speech corpus, not listeners' ratings. Tests over these tables check the pipeline; they measure no bias.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds")  # where the Debian packages install (not configurable)
CODEC2_WAVS = Path("/usr/share/codec2/wav")
VOICES = ("en_US_f_Allison", "es_MX_f_Allison", "fr_CA_f_June", "it_IT_m_Carlo", "ru_RU_f_IvrvoiceRU")
APT_PACKAGES = ("asterisk-core-sounds-en-wav asterisk-core-sounds-es-wav asterisk-core-sounds-fr-wav "
                "asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav codec2-examples")
SKIP_REASON = f"real speech needs the Debian packages: apt-get install {APT_PACKAGES}"
NOT_SPEECH = {"beep", "beeperr", "ascending-2tone", "descending-2tone"}
CODEC2_GENDER = {"forig": "female", "f2400": "female", "morig": "male", "m2400": "male"}
COLUMNS = ("client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accents", "variant",
           "locale", "segment")

PLEASANT_PROMPTS = ("auth-thankyou", "demo-congrats", "demo-thanks", "hello", "hello-world", "privacy-thankyou",
                    "queue-thankyou", "dir-welcome", "goodbye", "vm-goodbye")
UNPLEASANT_PROMPTS = ("something-terribly-wrong", "tt-somethingwrong", "sorry-youre-having-problems", "im-sorry",
                      "invalid", "auth-incorrect", "privacy-incorrect", "vm-incorrect", "all-circuits-busy-now",
                      "cannot-complete-as-dialed", "pbx-parkingfailed", "ss-noservice")
NEUTRAL_PROMPTS = ("extension", "number", "minutes", "seconds", "transfer", "telephone-number")


def real_speech_available() -> bool:
    """True when every voice folder and the codec2 examples are installed."""
    return all((ASTERISK_SOUNDS / voice).is_dir() for voice in VOICES) and CODEC2_WAVS.is_dir()


def link_clips(folder: Path) -> Path:
    """``folder/clips`` with links ``asterisk`` and ``codec2`` to the packages' folders (Common Voice's layout: the
    table beside a ``clips`` folder); returns it."""
    clips = folder / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    for name, target in (("asterisk", ASTERISK_SOUNDS), ("codec2", CODEC2_WAVS)):
        if not (clips / name).exists():
            os.symlink(target, clips / name, target_is_directory=True)
    return clips


def common_voice_rows() -> list[dict[str, str]]:
    """The table's rows (module docstring), sorted by path."""
    rows = []
    for voice in VOICES:
        language, region, sex, _ = voice.split("_", 3)
        for wav in sorted((ASTERISK_SOUNDS / voice).glob("*.wav")):
            if wav.stem in NOT_SPEECH:
                continue
            rows.append({"client_id": f"{voice}-{wav.stem}", "path": f"asterisk/{voice}/{wav.name}",
                         "sentence": wav.stem, "gender": {"f": "female", "m": "male"}[sex], "accents": region,
                         "locale": language})
    for wav in sorted(CODEC2_WAVS.glob("*.wav")):
        rows.append({"client_id": f"codec2-{wav.stem}", "path": f"codec2/{wav.name}", "sentence": "",
                     "gender": CODEC2_GENDER.get(wav.stem, ""), "locale": "en"})
    return rows


def write_common_voice_table(folder: Path) -> Path:
    """``folder/validated.tsv`` (Common Voice's columns, tab-separated) over the linked clips; returns its path."""
    link_clips(folder)
    return _write_tsv(folder / "validated.tsv", COLUMNS, common_voice_rows())


def write_emotion_table(folder: Path) -> Path:
    """``folder/emotions.tsv``: English prompts with the fixture's ``valence`` and ``emotion`` (module docstring)."""
    link_clips(folder)
    labelled = [(PLEASANT_PROMPTS, "8", "pleasant"), (UNPLEASANT_PROMPTS, "2", "unpleasant"),
                (NEUTRAL_PROMPTS, "5", "neutral")]
    rows = [{"path": f"asterisk/en_US_f_Allison/{prompt}.wav", "valence": valence, "emotion": emotion}
            for prompts, valence, emotion in labelled for prompt in prompts]
    return _write_tsv(folder / "emotions.tsv", ("path", "valence", "emotion"), rows)


def _write_tsv(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, columns, delimiter="\t", lineterminator="\n", restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path
