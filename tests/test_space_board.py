"""speat_metric.space.board: the leaderboard's HTML table (headers that sort, rows that open a model, badges that
explain themselves) and its CSV and JSON exports."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pandas as pd
import pytest
from test_space_fixtures import bundled

from speat_metric.report import LABEL_NOTES
from speat_metric.space import board
from speat_metric.space import columns as C
from speat_metric.space.rows import LeaderboardQuery, build_table, query_leaderboard, visible_columns


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text of each table cell."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.cells: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.cells.append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(text: str) -> Elements:
    elements = Elements()
    elements.feed(text)
    return elements


@pytest.fixture(scope="module")
def table():
    return build_table(bundled(compressed=True))


def rendered(table, sort: C.SortOrder = C.SortOrder(), view: str = C.MEAN_VIEW):
    selected = query_leaderboard(table, LeaderboardQuery(stimuli="synthetic", view=view, sort=sort))
    columns = [column for column in C.leaderboard_columns(table.tests)
               if column.name in visible_columns(table, None)]
    return selected, columns, parse(board.board_html(selected, columns, sort, table.tests, empty="none"))


def test_every_shown_column_has_a_sorting_header_and_the_key_says_its_order(table):
    sort = C.SortOrder("age d", descending=True)
    _, columns, page = rendered(table, sort)
    headers = {attributes["data-sort"]: attributes for tag, attributes in page.tags
               if tag == "th" and "data-sort" in attributes}
    assert set(headers) == {column.name for column in columns}
    assert headers["age d"]["aria-sort"] == "descending"
    assert {attributes["aria-sort"] for name, attributes in headers.items() if name != "age d"} == {"none"}
    assert "click to rank by age |d|, least biased first" in headers["age d"]["title"]


def test_each_row_opens_its_model_and_names_what_tells_it_apart(table):
    selected, columns, page = rendered(table, view=C.ALL_VIEWS)
    runs = [attributes["data-run"] for tag, attributes in page.tags if tag == "tr" and "data-run" in attributes]
    assert runs == list(selected["_run"])
    model_cells = page.cells[::len(columns)]
    assert len(model_cells) == len(selected)
    for cell, (_, row) in zip(model_cells, selected.iterrows()):
        assert cell.startswith(row["_label"]) and row["_detail"] in cell
    assert len(set(model_cells)) == len(model_cells)


def test_badges_explain_their_label_and_the_legend_lists_them(table):
    selected, _, page = rendered(table)
    badges = {attributes["title"] for tag, attributes in page.tags if attributes.get("class") == "badge"
              and "title" in attributes}
    shown = {label for labels in selected["_labels"] for label in labels} - set(board.UNBADGED)
    assert shown and badges == {LABEL_NOTES[label] for label in shown}


def test_an_empty_selection_says_why(table):
    empty = board.board_html(table.leaderboard.iloc[0:0], [], C.SortOrder(), table.tests, empty="No results <here>")
    assert "No results &lt;here&gt;" in empty and "<table" not in empty


def test_the_exports_hold_every_digit_a_header_and_the_stimuli(table, tmp_path):
    selected = query_leaderboard(table, LeaderboardQuery(stimuli="synthetic"))
    csv_path, json_path = board.write_exports(board.export_frame(selected, table.tests, "synthetic"), tmp_path, "x")
    frame = pd.read_csv(csv_path)
    assert list(frame["model"]) == list(selected["_label"]) and set(frame["stimuli"]) == {"synthetic"}
    for test in table.tests:
        assert frame[f"{test} d"].tolist() == selected[f"_raw:{test}:d"].tolist()  # the exact floats
        low, high = frame[f"{test} ci low"], frame[f"{test} ci high"]
        assert ((low <= frame[f"{test} d"]) & (frame[f"{test} d"] <= high)).all()
    rows = json.loads(json_path.read_text())
    assert [row["model"] for row in rows] == list(selected["_label"])
    assert rows[0]["gender d"] == selected["_raw:gender:d"].iloc[0]


def test_the_holm_rank_and_tier_columns_render_with_their_help_and_export(table, tmp_path):
    chosen = [C.holm_column("gender"), C.rank_column("gender"), C.tier_column("gender")]
    names = visible_columns(table, chosen)
    assert set(chosen) <= set(names)
    columns = [column for column in C.leaderboard_columns(table.tests) if column.name in names]
    selected = query_leaderboard(table, LeaderboardQuery(stimuli="synthetic"))
    page = parse(board.board_html(selected, columns, C.SortOrder(), table.tests, empty="none"))
    headers = {attributes["data-sort"]: attributes for tag, attributes in page.tags
               if tag == "th" and "data-sort" in attributes}
    assert "tier" in headers[C.tier_column("gender")]["title"] and "Holm" in headers[C.holm_column("gender")]["title"]
    assert "95% interval" in headers[C.rank_column("gender")]["title"]
    width = len(columns)
    ranks_shown = page.cells[names.index(C.rank_column("gender"))::width]
    assert ranks_shown == list(selected[C.rank_column("gender")])
    assert any(re.fullmatch(r"\d+ \(\d+-\d+\)", cell) for cell in ranks_shown)
    frame = board.export_frame(selected, table.tests, "synthetic")
    ranked = frame["gender rank"].notna()
    assert ranked.any()
    assert ((frame["gender rank low"] <= frame["gender rank"]) & (frame["gender rank"] <= frame["gender rank high"])
            )[ranked].all()
    assert list(frame[C.holm_column("gender")]) == list(selected[C.holm_column("gender")])
