"""A property test of speat_metric.hub.card_merge: for generated cards (with and without a byte-order mark, CRLF line
endings, comments, flow and block YAML, foreign model-index entries, fenced code blocks that quote our markers,
unicode), merging our section and entries, then merging again with other numbers, leaves every foreign line in place
and in order and our content present exactly once; merging the same results twice changes nothing."""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speat_metric.hub.card import BEGIN_MARKER, END_MARKER, render_card
from speat_metric.hub.card_merge import merge_card
from speat_metric.results import load_records

RECORDS = [record for record in load_records(Path(__file__).resolve().parents[1] / "speat_metric/data/example_records")
           if record.model.name == "mfcc" and record.pooling.get("layer") is None]
FIRST = render_card(RECORDS, repo_id="owner/model", allow_synthetic=True)
SECOND = render_card([record.replace(speat=dataclasses.replace(record.speat, effect_size=record.speat.effect_size + 1))
                      for record in RECORDS], repo_id="owner/model", allow_synthetic=True)

words = st.text(alphabet=st.sampled_from("abcdefgh xyzé日本語ñ-_.,"), min_size=1, max_size=12).map(str.strip).filter(
    lambda word: word and not word.startswith(("-", "#")))
scalars = st.one_of(words.map(lambda word: f"'{word}'"), st.integers(0, 999).map(str), st.sampled_from(["true",
                                                                                                        "null"]))


@st.composite
def headers(draw) -> list[str] | None:
    """The YAML header's lines (None: no header; []: an empty one)."""
    kind = draw(st.sampled_from(["none", "empty", "keys"]))
    if kind == "none":
        return None
    if kind == "empty":
        return []
    lines = []
    for index in range(draw(st.integers(0, 4))):
        style = draw(st.sampled_from(["scalar", "flow", "block", "comment"]))
        key = f"key{index}"
        if style == "scalar":
            lines.append(f"{key}: {draw(scalars)}" + draw(st.sampled_from(["", "  # the owner's note"])))
        elif style == "flow":
            lines.append(f"{key}: [{', '.join(draw(st.lists(scalars, max_size=3)))}]")
        elif style == "block":
            lines += [f"{key}:", *(f"- {value}" for value in draw(st.lists(scalars, min_size=1, max_size=3)))]
        else:
            lines.append(f"# {draw(words)}")
    if draw(st.booleans()):  # the owner's own results, in block style
        lines += ["model-index:", "- name: model", "  results:", "  - task: {type: automatic-speech-recognition}",
                  "    dataset: {type: librispeech_asr, name: LibriSpeech}",
                  "    metrics:", "    - type: wer", f"      value: {draw(st.integers(1, 90))}  # theirs"]
    return lines


@st.composite
def bodies(draw) -> list[str]:
    lines = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["text", "blank", "heading", "fence", "table"]))
        if kind == "text":
            lines.append(draw(words) + draw(st.sampled_from(["", "  "])))
        elif kind == "blank":
            lines.append("")
        elif kind == "heading":
            lines.append(f"## {draw(words)}")
        elif kind == "fence":  # an owner quoting our markers in a code block
            lines += [draw(st.sampled_from(["```", "~~~", "```markdown"])), BEGIN_MARKER, draw(words), END_MARKER]
            lines.append("~~~" if lines[-4].startswith("~") else "```")
        else:
            lines += ["| a | b |", "|---|---|", f"| {draw(words)} | 1 |"]
    return lines


@st.composite
def cards(draw) -> str:
    header, body = draw(headers()), draw(bodies())
    lines = ([] if header is None else ["---", *header, "---"]) + body
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(lines) + (newline if lines and draw(st.booleans()) else "")
    return ("\ufeff" if draw(st.booleans()) else "") + text


def kept_in_order(original: str, merged: str) -> None:
    """Every line of `original` is a line of `merged`, unchanged and in order (only lines were added; a last line
    without a newline may gain one when something follows it)."""
    old, new = original.removeprefix("\ufeff").splitlines(), merged.removeprefix("\ufeff").splitlines()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        assert tag in ("equal", "insert"), f"lines of the card changed: {old[i1:i2]!r} -> {new[j1:j2]!r}"


def ours_once(merged: str, original: str) -> None:
    """Our model-index results once per test, our section once, and the owner's quoted markers left as they were."""
    card = ModelCard(merged.removeprefix("\ufeff"))
    assert [result.metric_type for result in card.data.eval_results or []].count("speat_d") == len(RECORDS)
    assert merged.splitlines().count("## Social bias (SpEAT)") == 1
    assert merged.splitlines().count(BEGIN_MARKER) == original.splitlines().count(BEGIN_MARKER) + 1


@pytest.mark.slow  # 500 generated cards
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cards())
def test_merging_keeps_every_foreign_line_and_writes_ours_once(card):
    first = merge_card(card, FIRST)
    kept_in_order(card, first)
    assert first.startswith("\ufeff") == card.startswith("\ufeff")
    assert ("\r\n" in first) == ("\r\n" in card) or "\r\n" not in card
    second = merge_card(first, SECOND)
    kept_in_order(card, second)
    assert merge_card(second, SECOND) == second  # the same results again: no change
    assert merge_card(second, FIRST) == first  # and back: our content is all that differs
    for merged in (first, second):
        ours_once(merged, card)
