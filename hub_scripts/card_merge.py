"""Merge speat's card content into an existing README, leaving every other byte alone.

`merge_card` writes a `speat_metric.hub.card.CardContent` into a README: our ``model-index`` results and our section
(between `speat_metric.hub.card.BEGIN_MARKER` and `END_MARKER`) are replaced, never duplicated; everything else stays
byte-identical: other YAML keys and their order, comments, other evaluation results, every other line of the body,
the line endings. It edits the YAML header's text at the positions PyYAML reports, then checks by re-parsing that
only our entries changed; a header it cannot edit that way (a flow-style ``model-index``) is rewritten through
``huggingface_hub``'s card API instead, with a warning. A card whose YAML does not parse, whose ``model-index`` is
invalid or whose markers are broken raises `CardError` (`check_card`), and nothing is pushed.

`set_yaml_keys` does the same for whole top-level keys (the results dataset's ``configs`` and ``dataset_info``).
Text in, text out: no network.

Example:
    >>> from speat_metric.hub.card import render_card                                     # doctest: +SKIP
    >>> readme = merge_card(old_readme, render_card(records, repo_id="me/model"))   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import yaml
from huggingface_hub import ModelCard
from huggingface_hub.repocard import REGEX_YAML_BLOCK
from huggingface_hub.utils import yaml_dump

from speat_metric.hub.card import BEGIN_MARKER, END_MARKER, METRIC_PREFIX, PROVENANCE_LINE, CardContent, CardError

logger = logging.getLogger(__name__)


def merge_card(readme: str | None, content: CardContent) -> str:
    """The README with our ``model-index`` results and our section replaced or added, all else byte-identical.

    Args:
        readme: the current README.md text, or None when the repository has none.
        content: what `render_card` made.

    Returns:
        The new README text (equal to `readme` when nothing changed).

    Raises:
        CardError: the card's YAML does not parse or is not a mapping, its ``model-index`` is invalid, or its speat
            markers are broken (one without the other, repeated, or out of order).
    """
    bom, text = _split_bom(readme or "")
    newline = "\r\n" if "\r\n" in text else "\n"
    check_card(text)
    text = _merge_section(text, content.section.replace("\n", newline), newline)
    text = _merge_model_index(text, content, newline)
    check_card(text)
    return bom + text


def check_card(readme: str) -> None:
    """Raise `CardError` when `readme` cannot be annotated safely (invalid YAML or model-index, broken markers, a
    header that is opened and never closed)."""
    _, readme = _split_bom(readme)
    _section_bounds(readme)
    header = _header(readme)
    if header is None or header[0] == header[1]:  # no header, or an empty one: nothing to check
        return
    try:
        data = _load(readme[header[0]:header[1]])
    except yaml.YAMLError as error:
        raise CardError(f"README.md has invalid YAML metadata: {_yaml_problem(error)}; fix the card's YAML header "
                        "first") from None
    if data is not None and not isinstance(data, dict):
        raise CardError("README.md YAML metadata is not a mapping of keys to values; fix the card's YAML header first")
    try:
        ModelCard(readme)
    except ValueError as error:
        raise CardError(f"README.md metadata is not valid for the Hub: {error}") from None


def card_provenance(readme: str | None) -> dict[str, Any] | None:
    """What the speat section of `readme` says it was made from (None when there is no readable section)."""
    if not readme:
        return None
    try:
        bounds = _section_bounds(readme)
    except CardError:
        return None
    if bounds is None:
        return None
    match = PROVENANCE_LINE.search(readme, bounds[0], bounds[1])
    if match is None:
        return None
    try:
        return json.loads(match.group(1))
    except json.JSONDecodeError:
        return None


_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load(text: str) -> Any:
    """``yaml.safe_load``, with libyaml where PyYAML has it (a card's header is parsed several times per merge). The
    node positions the in-place edits need come from PyYAML's own composer, whose marks count characters."""
    return yaml.load(text, Loader=_SAFE_LOADER)


def _split_bom(text: str) -> tuple[str, str]:
    """(the UTF-8 byte-order mark the card starts with, or ``""``; the card without it): the header after a BOM is
    still the card's header."""
    return ("\ufeff", text[1:]) if text.startswith("\ufeff") else ("", text)


_OPENING = re.compile(r"\A\s*---[ \t]*\r?\n")
_EMPTY_CLOSING = re.compile(r"[ \t]*---[ \t]*(\r?\n|\Z)")


def _header(text: str) -> tuple[int, int] | None:
    """(start, end) of the YAML header's text, between the ``---`` lines (without the newline before the closing
    one, as huggingface_hub reads it); an empty header (``---`` twice) gives an empty span; None without a header.

    Raises:
        CardError: the card opens a header and never closes it.
    """
    opening = _OPENING.match(text)
    if opening is not None and _EMPTY_CLOSING.match(text, opening.end()):  # before huggingface_hub's pattern, which
        return opening.end(), opening.end()                                   # splits an empty CRLF header at \r
    match = REGEX_YAML_BLOCK.search(text)
    if match is not None:
        return match.start(2), match.end(2)
    if opening is None:
        return None
    raise CardError("README.md opens a YAML header ('---' on its first line) that is never closed: add the closing "
                    "'---' line, or remove the opening one")


def _fenced(text: str) -> list[tuple[int, int]]:
    """(start, end) of every fenced code block (``` or ~~~): markers quoted in them are not our section."""
    spans, opened = [], None
    for line in re.finditer(r"^ {0,3}(`{3,}|~{3,}).*$", text, re.MULTILINE):
        if opened is None:
            opened = line
        elif line.group(1)[0] == opened.group(1)[0] and len(line.group(1)) >= len(opened.group(1)):
            spans.append((opened.start(), line.end()))
            opened = None
    if opened is not None:
        spans.append((opened.start(), len(text)))
    return spans


def _section_bounds(readme: str) -> tuple[int, int] | None:
    """(start, end) of our section, markers included (end after the end marker's line), or None when absent.
    Markers inside fenced code blocks (an owner quoting them) do not count."""
    fenced = _fenced(readme)

    def found(marker: str) -> list[int]:
        return [match.start() for match in re.finditer(re.escape(marker), readme)
                if not any(start <= match.start() < end for start, end in fenced)]

    begins, ends = found(BEGIN_MARKER), found(END_MARKER)
    if not begins and not ends:
        return None
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        where = "; ".join(f"{name} marker at line{'s' if len(found) != 1 else ''} "
                          f"{', '.join(str(readme.count(chr(10), 0, at) + 1) for at in found) or 'none'}"
                          for name, found in (("begin", begins), ("end", ends)))
        raise CardError(f"README.md has a broken speat section ({where}); it needs exactly one begin marker "
                        "followed by one end marker: restore them or delete the section, markers included")
    end = readme.find("\n", ends[0])
    return begins[0], len(readme) if end == -1 else end + 1


def _merge_section(text: str, section: str, newline: str) -> str:
    bounds = _section_bounds(text)
    if bounds is not None:
        start, end = bounds
        if end == len(text) and not text.endswith("\n"):
            section = section.rstrip("\r\n")
        return text[:start] + section + text[end:]
    if not text.strip():
        return text + section
    separator = "" if text.endswith(newline * 2) else newline if text.endswith("\n") else newline * 2
    return text + separator + section


def _is_ours(result: Any) -> bool:
    """A ``model-index`` result item written by speat (its metrics are typed ``speat_...``)."""
    metrics = result.get("metrics") if isinstance(result, dict) else None
    return isinstance(metrics, list) and any(
        isinstance(metric, dict) and str(metric.get("type", "")).startswith(METRIC_PREFIX) for metric in metrics)


def _without_ours(data: dict[str, Any]) -> dict[str, Any]:
    """The metadata without speat's results, for comparing two versions of a header: a model-index entry left
    without results (it held only ours, or none, as in ``results: []``) and a model-index left empty count as
    absent."""
    data = copy.deepcopy(data)
    if not isinstance(data.get("model-index"), list):
        return data
    kept = []
    for entry in data["model-index"]:
        if isinstance(entry, dict) and isinstance(entry.get("results"), list):
            entry["results"] = [result for result in entry["results"] if not _is_ours(result)]
            if not entry["results"]:
                continue
        kept.append(entry)
    if kept:
        data["model-index"] = kept
    else:
        del data["model-index"]
    return data


def _ours(data: dict[str, Any]) -> list[Any]:
    return [result for entry in data.get("model-index") or [] if isinstance(entry, dict)
            for result in entry.get("results") or [] if _is_ours(result)]


def _merge_model_index(text: str, content: CardContent, newline: str) -> str:
    ours = content.model_index_results
    header = _header(text)
    if header is None or header[0] == header[1]:  # no header, or an empty one: ours fills it
        if not ours:
            return text
        front = yaml_dump({"model-index": [{"name": _model_name(content.model), "results": ours}]},
                          sort_keys=False).replace("\n", newline)
        if header is not None:
            return text[:header[0]] + front + text[header[0]:]
        return f"---{newline}{front}---{newline}{text}"
    start, end = header
    block = text[start:end]
    data = _load(block) or {}
    edited = _splice_model_index(block, data, ours, _model_name(content.model), newline)
    if edited is not None and _only_ours_changed(data, _load(edited) or {}, ours):
        return text[:start] + edited + text[end:]
    logger.warning("README.md: the model-index could not be edited in place; rewriting the YAML header through "
                   "huggingface_hub's card API (other keys keep their values and order, not their formatting)")
    return _rewrite_through_card_api(text, content)


def _only_ours_changed(old: dict[str, Any], new: dict[str, Any], ours: list[dict[str, Any]]) -> bool:
    return _without_ours(old) == _without_ours(new) and _ours(new) == ours


def _model_name(model: str) -> str:
    return model.rstrip("/").split("/")[-1]


def _splice_model_index(block: str, data: dict[str, Any], ours: list[dict[str, Any]], model_name: str,
                        newline: str) -> str | None:
    """Edit the YAML text of the header in place: remove our old results, insert the new ones where the first old
    one was (else at the end of the first model's results). None when the layout is not one this can edit."""
    root = yaml.compose(block, Loader=yaml.SafeLoader)
    if root is not None and not isinstance(root, yaml.MappingNode):
        return None
    pairs = {key.value: value for key, value in (root.value if root else []) if isinstance(key, yaml.ScalarNode)}
    if "model-index" not in pairs:
        if not ours:
            return block
        separator = "" if not block or block.endswith(("\n", "\r")) else newline
        return block + separator + _dump_key("model-index", [{"name": model_name, "results": ours}], newline)
    index_node = pairs["model-index"]
    if not isinstance(index_node, yaml.SequenceNode) or index_node.flow_style or not index_node.value:
        return None
    edits: list[tuple[int, int, str]] = []
    insert_at: int | None = None
    for entry_number, entry in enumerate(index_node.value):
        results = _mapping_value(entry, "results")
        if results is None:
            continue
        if isinstance(results, yaml.SequenceNode) and results.flow_style and not results.value:
            if entry_number == 0 and ours:  # `results: []`: ours become its block list, in place of ` []`
                key = next(name for name, value in entry.value if value is results)
                rendered = _indent(yaml_dump(ours, sort_keys=False), key.start_mark.column).rstrip("\n")
                colon = block.index(":", key.end_mark.index) + 1
                edits.append((colon, results.end_mark.index, newline + rendered.replace("\n", newline)))
            continue
        if not isinstance(results, yaml.SequenceNode) or results.flow_style:
            return None
        items = data["model-index"][entry_number]["results"]
        for node, item in zip(results.value, items):
            if _is_ours(item):
                start, end = _item_lines(block, node)
                if start is None:
                    return None
                edits.append((start, end, ""))
                if insert_at is None and entry_number == 0:
                    insert_at = start
        if entry_number == 0 and ours:
            if not results.value:
                return None
            dash_column = _dash_column(block, results.value[0])
            if dash_column is None:
                return None
            rendered = _indent(yaml_dump(ours, sort_keys=False), dash_column).replace("\n", newline)
            if insert_at is None:
                _, end = _item_lines(block, results.value[-1])
                if end is None:
                    return None
                if end == len(block) and not block.endswith("\n"):
                    rendered = newline + rendered.rstrip("\r\n")
                insert_at = end
            elif insert_at == len(block):
                rendered = rendered.rstrip("\r\n")
            edits.append((insert_at, insert_at, rendered))
    if ours and not any(replacement for _, _, replacement in edits):
        return None
    original = block
    for start, end, replacement in sorted(edits, key=lambda edit: (edit[0], edit[2] == ""), reverse=True):
        block = block[:start] + replacement + block[end:]
    if block.endswith(newline) and not original.endswith(("\n", "\r")):
        block = block[:-len(newline)]  # the newline before the closing '---' belongs to the delimiter
    return block


def _mapping_value(node: yaml.Node, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((value for name, value in node.value if isinstance(name, yaml.ScalarNode) and name.value == key),
                None)


def _last_index(node: yaml.Node) -> int:
    """Where the last scalar of a node ends (block collections' own end marks run on to the next token)."""
    if isinstance(node, yaml.MappingNode) and node.value and not node.flow_style:
        return _last_index(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and node.value and not node.flow_style:
        return _last_index(node.value[-1])
    return node.end_mark.index


def _dash_column(block: str, node: yaml.Node) -> int | None:
    dash = block.rfind("-", 0, node.start_mark.index)
    line_start = block.rfind("\n", 0, dash) + 1
    if dash < 0 or block[line_start:dash].strip() or block[dash + 1:node.start_mark.index].strip():
        return None
    return dash - line_start


def _item_lines(block: str, node: yaml.Node) -> tuple[int | None, int | None]:
    """(start, end) of the whole lines a block-sequence item spans, from its dash to the end of its last line."""
    column = _dash_column(block, node)
    if column is None:
        return None, None
    start = block.rfind("\n", 0, block.rfind("-", 0, node.start_mark.index)) + 1
    return start, _line_end(block, node)


def _line_end(block: str, node: yaml.Node) -> int:
    """The index just after the line on which `node` ends (its newline included; the block's end if none)."""
    last = _last_index(node)
    if last > 0 and block[last - 1] == "\n":  # a literal or folded block scalar ends after its newline
        return last
    end = block.find("\n", last)
    return len(block) if end == -1 else end + 1


def _indent(text: str, columns: int) -> str:
    return "".join(" " * columns + line if line.strip() else line for line in text.splitlines(keepends=True))


def _dump_key(key: str, value: Any, newline: str) -> str:
    return yaml_dump({key: value}, sort_keys=False).rstrip("\n").replace("\n", newline)


def _rewrite_through_card_api(text: str, content: CardContent) -> str:
    card = ModelCard(text)
    kept = [result for result in (card.data.eval_results or []) if not result.metric_type.startswith(METRIC_PREFIX)]
    card.data.eval_results = kept + list(content.eval_results)
    card.data.model_name = card.data.model_name or _model_name(content.model)
    return str(card)


def set_yaml_keys(readme: str | None, values: Mapping[str, Any]) -> str:
    """The README with top-level YAML keys set to `values` (replaced in place, or added at the end of the header);
    every other byte unchanged. Used for the results dataset's card (``configs``, ``dataset_info``).

    Raises:
        CardError: the YAML header does not parse or is not a mapping.

    Example:
        >>> print(set_yaml_keys("---\\nlicense: mit  # ours\\ntags: [a]\\n---\\nBody\\n", {"tags": ["b"]}), end="")
        ---
        license: mit  # ours
        tags:
        - b
        ---
        Body
    """
    bom, text = _split_bom(readme or "")
    newline = "\r\n" if "\r\n" in text else "\n"
    header = _header(text)
    if header is None or header[0] == header[1]:
        front = "".join(_dump_key(key, value, newline) + newline for key, value in values.items())
        if header is not None:
            return bom + text[:header[0]] + front + text[header[0]:]
        return f"{bom}---{newline}{front}---{newline}{text}"
    block = text[header[0]:header[1]]
    try:
        root = yaml.compose(block, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        raise CardError(f"README.md has invalid YAML metadata: {_yaml_problem(error)}") from None
    if root is not None and not isinstance(root, yaml.MappingNode):
        raise CardError("README.md YAML metadata is not a mapping of keys to values")
    pairs = {key.value: (key, value) for key, value in (root.value if root else []) if isinstance(key, yaml.ScalarNode)}
    edits = []
    appended = ""
    for key, value in values.items():
        rendered = _dump_key(key, value, newline)
        if key in pairs:
            key_node, value_node = pairs[key]
            start = block.rfind("\n", 0, key_node.start_mark.index) + 1
            edits.append((start, _line_end(block, value_node), rendered + newline))
        else:
            appended += rendered + newline
    if appended:
        separator = "" if not block or block.endswith(("\n", "\r")) else newline
        edits.append((len(block), len(block), separator + appended))
    for start, end, replacement in sorted(edits, key=lambda edit: edit[0], reverse=True):
        block = block[:start] + replacement + block[end:]
    if block.endswith(newline) and not text[header[0]:header[1]].endswith(newline):
        block = block[:-len(newline)]  # the newline before the closing '---' belongs to the delimiter
    return bom + text[:header[0]] + block + text[header[1]:]


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"{problem} at line {mark.line + 2}" if mark is not None else problem  # +2: the '---' line, 1-based

