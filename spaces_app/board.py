"""The leaderboard as an HTML table, and its exports.

Gradio's dataframe sorts from a menu and cannot put badges, hover help or a narrow-screen layout in a cell, so the
leaderboard is our own table (shown by ``gr.HTML``):

- a header click sorts (the page sends ``{"sort": header}``; a second click on the same header reverses the order);
- a row click opens the model (``{"run": run}``);
- the model cell names what tells a row from its neighbours (layer, checkpoint, compression), the rows it stands
  for (exact duplicates), and the comparability labels as badges that explain themselves on hover or focus;
- below 700 px the table becomes a stack: the model, the ranking key and one test at a time (buttons switch).

`export_frame` is the shown rows at full precision, for the CSV and JSON downloads.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from speat_metric.formatting import CI_EXCLUDES_ZERO_MARK, CI_EXCLUDES_ZERO_NOTE
from speat_metric.report import LABEL_NOTES
from speat_metric.space import columns as C
from speat_metric.space.rows import COMPUTED_MEAN, COMPUTED_MEAN_NOTE

BADGE_NOTES = {**LABEL_NOTES, COMPUTED_MEAN: COMPUTED_MEAN_NOTE}

UNBADGED = ("synthetic-stimuli",)
"""Labels every row of a view shares, said once above the table instead (real and synthetic are never mixed)."""

SCRIPT = """
const send = (target) => {
  const header = target.closest('th[data-sort]');
  if (header) { trigger('click', {sort: header.dataset.sort}); return true; }
  const choice = target.closest('button[data-focus-test]');
  if (choice) { focus(choice.dataset.focusTest); return true; }
  const row = target.closest('tr[data-run]');
  if (row && !target.closest('a')) { trigger('click', {run: row.dataset.run}); return true; }
  return false;
};
const focus = (test) => {
  element.dataset.focusTest = test;
  element.querySelectorAll('[data-test]').forEach((cell) => {
    cell.classList.toggle('focus', cell.dataset.test === test);
  });
  element.querySelectorAll('button[data-focus-test]').forEach((button) => {
    button.setAttribute('aria-pressed', String(button.dataset.focusTest === test));
  });
};
element.addEventListener('click', (event) => { send(event.target); });
element.addEventListener('keydown', (event) => {
  if ((event.key === 'Enter' || event.key === ' ') && send(event.target)) { event.preventDefault(); }
});
watch('value', () => { if (element.dataset.focusTest) { focus(element.dataset.focusTest); } });
"""
"""The page side of the table (``gr.HTML``'s ``js_on_load``): clicks and keys become events; the narrow stack's
test choice survives a redraw."""


def board_html(selected: pd.DataFrame, columns: Sequence[C.Column], sort: C.SortOrder, tests: Sequence[str], *,
               empty: str) -> str:
    """The rows of `selected` (from `rows.query_leaderboard`) under the `columns` shown, ranked by `sort`."""
    if selected.empty:
        return f'<div class="board-empty" role="status">{html.escape(empty)}</div>'
    focus = sort.column[:-2] if sort.column.endswith(" d") and sort.column[:-2] in tests else (
        next((test for test in tests if any(column.test == test for column in columns)), None))
    shown_tests = [test for test in tests if any(column.test == test for column in columns)]
    switch = "".join(f'<button type="button" data-focus-test="{html.escape(test)}" '
                     f'aria-pressed="{str(test == focus).lower()}">{html.escape(test)}</button>'
                     for test in shown_tests)
    head = _headers(columns, sort)
    body = "".join(_row(row, columns, sort, focus) for _, row in selected.iterrows())
    width = sum(column.width for column in columns)
    return (f'<div class="board-switch" role="group" aria-label="Test shown">Test: {switch}</div>'
            f'<div class="board-scroll"><table class="board" style="min-width:{width}px">'
            f'<colgroup>{"".join(f"<col style=width:{column.width}px>" for column in columns)}</colgroup>'
            f"<thead>{head}</thead><tbody>{body}</tbody></table></div>{_legend(selected)}")


def _headers(columns: Sequence[C.Column], sort: C.SortOrder) -> str:
    """Two header rows: each test's name over its columns (d, size, p, CI), other columns spanning both rows."""
    top, bottom = [], []
    for position, column in enumerate(columns):
        if column.test is None:
            top.append(_header(column, sort, rowspan=2))
        elif position == 0 or columns[position - 1].test != column.test:
            span = sum(1 for other in columns if other.test == column.test)
            top.append(f'<th scope="colgroup" colspan="{span}" class="test-name" data-test="{html.escape(column.test)}"'
                       f">{html.escape(column.test)}</th>")
        if column.test is not None:
            bottom.append(_header(column, sort, text=column.name.removeprefix(f"{column.test} ")))
    return f'<tr>{"".join(top)}</tr><tr class="sub">{"".join(bottom)}</tr>'


def _header(column: C.Column, sort: C.SortOrder, *, rowspan: int = 1, text: str | None = None) -> str:
    state = "none"
    arrow = ""
    if column.name == sort.column:
        state = "descending" if sort.descending else "ascending"
        arrow = " ▼" if sort.descending else " ▲"
    next_order = sort.flipped() if column.name == sort.column else C.SortOrder(column.name, False)
    title = (column.help + "; " if column.help else "") + f"click to rank by {next_order.text()}"
    classes = " ".join(filter(None, ["num" if column.numeric else "", "key" if column.name == sort.column else ""]))
    test = f' data-test="{html.escape(column.test)}"' if column.test else ""
    span = f' rowspan="{rowspan}"' if rowspan > 1 else ""
    return (f'<th scope="col"{span} class="{classes}" data-sort="{html.escape(column.name)}" aria-sort="{state}"'
            f'{test} tabindex="0" title="{html.escape(title)}" aria-label="{html.escape(column.name)}">'
            f"{html.escape(column.name if text is None else text)}{arrow}</th>")


def _row(row: pd.Series, columns: Sequence[C.Column], sort: C.SortOrder, focus: str | None) -> str:
    cells = []
    for column in columns:
        classes = ["num" if column.numeric else "", "key" if column.name == sort.column else "",
                   "focus" if column.test is not None and column.test == focus else ""]
        text = _model_cell(row) if column.name == C.MODEL else html.escape(str(row.get(column.name, "")))
        attributes = f' data-label="{html.escape(column.name)}"'
        if column.test:
            attributes += f' data-test="{html.escape(column.test)}"'
            if column.name == C.d_column(column.test) and row.get(f"{column.test} CI"):
                attributes += f' title="95% CI {html.escape(str(row[f"{column.test} CI"]))}"'
        classes.append("model" if column.name == C.MODEL else "")
        cells.append(f'<td class="{" ".join(filter(None, classes))}"{attributes}>{text}</td>')
    return f'<tr data-run="{html.escape(str(row["_run"]))}" tabindex="0">{"".join(cells)}</tr>'


def _model_cell(row: pd.Series) -> str:
    label = html.escape(str(row["_label"]))
    name = (f'<a href="{html.escape(row["_link"])}" target="_blank" rel="noopener">{label}</a>' if row.get("_link")
            else f'<span class="model-name">{label}</span>')
    if row.get("_audio_warning"):
        name += ' <span class="audio-warning" title="computed from other audio than the rest: not comparable">⚠</span>'
    parts = [name]
    if row.get("_detail"):
        parts.append(f'<div class="row-detail">{html.escape(str(row["_detail"]))}</div>')
    if row.get("_aliases"):
        parts.append(f'<div class="aliases" title="the same weights, stimuli and settings, with the same d">'
                     f'also: {html.escape(str(row["_aliases"]))}</div>')
    badges = "".join(f'<span class="badge" tabindex="0" title="{html.escape(BADGE_NOTES.get(label, label))}">'
                     f"{html.escape(label)}</span>" for label in row.get("_labels", ()) if label not in UNBADGED)
    if badges:
        parts.append(f'<div class="badges">{badges}</div>')
    return "".join(parts)


def _legend(selected: pd.DataFrame) -> str:
    """What the marks and badges of the rows shown mean (the badges' hover text, for touch screens and print)."""
    labels = dict.fromkeys(label for labels in selected["_labels"] for label in labels)
    items = [f"<li><b>{CI_EXCLUDES_ZERO_MARK}</b> {html.escape(CI_EXCLUDES_ZERO_NOTE.split(': ', 1)[1])}</li>"]
    items += [f'<li><span class="badge">{html.escape(label)}</span> {html.escape(BADGE_NOTES.get(label, ""))}</li>'
              for label in labels]
    return f'<details class="board-legend"><summary>What the marks and badges mean</summary><ul>{"".join(items)}</ul>' \
           "</details>"


# Exports -----------------------------------------------------------------------------------------------------------

def export_frame(selected: pd.DataFrame, tests: Sequence[str], stimuli: str) -> pd.DataFrame:
    """The rows shown, one per leaderboard row, at full precision: d, p and the CI bounds as numbers in their own
    columns, with the stimuli they were measured on; the Holm-adjusted p as the table writes it, and the rank, its
    interval's bounds and the tier as whole numbers (empty where there is none)."""
    frame = pd.DataFrame({
        "model": selected["_label"], "variant": selected["_detail"], "same as": selected["_aliases"],
        "stimuli": stimuli, "stimuli source": selected["stimuli"], "layers": selected["layers"],
        "family": selected["family"], "parameters": selected["_raw:params"],
        "compression": selected["compression"], "revision": selected["revision"], "profile": selected["profile"],
        "labels": selected["labels"], "audio": selected[C.AUDIO], "mean |d|": selected["_raw:mean_abs_d"],
    })
    for test in tests:
        frame[f"{test} groups"] = selected[f"_raw:{test}:groups"]
        for part in ("d", "p", "ci_low", "ci_high"):
            frame[f"{test} {part.replace('_', ' ')}"] = selected[f"_raw:{test}:{part}"]
        frame[f"{test} size"] = selected[f"{test} size"]
        frame[C.holm_column(test)] = selected[C.holm_column(test)]
        for part in ("rank", "rank_low", "rank_high", "tier"):  # only in rows of `rows.query_leaderboard`
            if f"_raw:{test}:{part}" in selected:
                frame[f"{test} {part.replace('_', ' ')}"] = selected[f"_raw:{test}:{part}"].astype("Int64")
    return frame.reset_index(drop=True)


def write_exports(frame: pd.DataFrame, folder: Path, stem: str) -> tuple[Path, Path]:
    """The export as ``<stem>.csv`` (header row, every digit) and ``<stem>.json`` (a list of row objects, missing
    values as null), in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = folder / f"{stem}.csv", folder / f"{stem}.json"
    frame.to_csv(csv_path, index=False, float_format="%.17g")
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")  # floats keep every digit
    json_path.write_text(json.dumps(rows, indent=1, ensure_ascii=False, allow_nan=False), encoding="utf-8")
    return csv_path, json_path
