import re

import pytest

from shufflelib.tables import Table


def make_table():
    rows = [
        {"name": "alpha", "time": 1.5, "count": 3},
        {"name": "b<c & d", "time": 0.25, "count": 20000},
    ]
    return Table(rows, title="My title", note="measured on a test machine", units={"time": "ms"})


def test_table_is_a_list_of_row_dicts():
    table = make_table()
    assert isinstance(table, list)
    assert len(table) == 2
    assert table[0] == {"name": "alpha", "time": 1.5, "count": 3}
    assert table.title == "My title"
    assert table.note == "measured on a test machine"


def test_table_copies_rows():
    source = [{"a": 1}]
    table = Table(source)
    source[0]["a"] = 99
    assert table[0]["a"] == 1


def test_table_from_generator_and_defaults():
    table = Table({"k": k} for k in range(3))
    assert table.column("k") == [0, 1, 2]
    assert table.title == ""
    assert table.note == ""


def test_columns_in_first_seen_order():
    table = make_table()
    assert table.columns == ["name", "time", "count"]
    ragged = Table([{"a": 1}, {"b": 2, "a": 3}, {"c": 4}])
    assert ragged.columns == ["a", "b", "c"]
    assert ragged.column("b") == [None, 2, None]
    assert Table().columns == []


def test_column_values_in_row_order():
    table = make_table()
    assert table.column("name") == ["alpha", "b<c & d"]
    assert table.column("time") == [1.5, 0.25]
    assert table.column("count") == [3, 20000]


def test_column_reads_rows_added_later():
    table = make_table()
    table.append({"name": "gamma", "extra": True})
    assert table.column("extra") == [None, None, True]


def test_unknown_column():
    with pytest.raises(ValueError, match="no column 'nope' in the table; it has \\['name'"):
        make_table().column("nope")
    with pytest.raises(ValueError, match="no column 'a'"):
        Table().column("a")


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([1, 2], r"rows\[0\] must be a dict of column -> value, got 1"),
        ("ab", "rows must be an iterable of dicts"),
        ({"a": 1}, "rows must be an iterable of dicts"),
        (3, "rows must be an iterable of dicts"),
    ],
)
def test_rows_that_are_not_dicts_are_refused(rows, match):
    with pytest.raises(TypeError, match=match):
        Table(rows)
    with pytest.raises(TypeError, match="title must be a str, got 3"):
        Table([], title=3)


def test_str_contains_title_note_and_values():
    text = str(make_table())
    lines = text.splitlines()
    assert lines[0] == "My title"
    assert lines[-1] == "measured on a test machine"
    for column in ("name", "time (ms)", "count"):
        assert column in lines[1]
    assert set(lines[2]) == {"-", " "}
    assert "alpha" in lines[3] and "1.500" in lines[3] and lines[3].rstrip().endswith("3")
    assert "b<c & d" in lines[4] and "0.250" in lines[4] and "20,000" in lines[4]
    assert len(lines) == 6
    assert repr(make_table()) == text


def test_str_without_title_or_note_starts_with_header():
    lines = str(Table([{"x": 1}])).splitlines()
    assert lines == ["x", "-", "1"]


def test_str_formats_numbers():
    table = Table([{"v": v} for v in (0.0, 12345.0, 0.0001, 2.5, 42.25, 1234, 123456, "s", True)])
    values = [line.strip() for line in str(table).splitlines()[2:]]
    assert values == ["0", "1.23e+04", "0.0001", "2.500", "42.2", "1234", "123,456", "s", "True"]


def test_str_missing_cells_are_blank():
    lines = str(Table([{"a": 1, "b": 2}, {"a": 3}])).splitlines()
    assert lines[3].split() == ["3"]


def test_columns_aligned():
    lines = str(make_table()).splitlines()[1:-1]
    assert len({len(line) for line in lines}) == 1


def cells(html, tag):
    return re.findall(rf"<{tag}(?: [^>]*)?>(.*?)</{tag}>", html)


def test_repr_html():
    html = make_table()._repr_html_()
    assert html.startswith("<table")
    assert "</table>" in html
    assert "<caption>My title</caption>" in html
    assert cells(html, "th") == ["name", "time (ms)", "count"]
    assert cells(html, "td") == ["alpha", "1.500", "3", "b&lt;c &amp; d", "0.250", "20,000"]
    assert "b<c" not in html
    assert "<small>measured on a test machine</small>" in html
    assert html.count("<tr>") == 3


def test_repr_html_escapes_title_note_and_header():
    table = Table([{"<col>": "<v>"}], title="a<b", note="x>y")
    html = table._repr_html_()
    assert "<caption>a&lt;b</caption>" in html
    assert cells(html, "th") == ["&lt;col&gt;"]
    assert cells(html, "td") == ["&lt;v&gt;"]
    assert "x&gt;y" in html
    assert "<v>" not in html and "<col>" not in html


def test_repr_html_without_title_or_note():
    html = Table([{"a": 1}, {"b": 2}])._repr_html_()
    assert "<caption>" not in html
    assert "<small>" not in html
    assert html.endswith("</table>")
    assert cells(html, "th") == ["a", "b"]
    assert cells(html, "td") == ["1", "", "", "2"]


def test_missing_values_and_shapes_print_compactly():
    t = Table([{"shape": (1, 24, 56, 56), "stride": (2, 1), "GPU": None}])
    text, page = str(t), t._repr_html_()
    assert "1\u00d724\u00d756\u00d756" in text and "(2, 1)" in text and "None" not in text
    assert "\u2014" in text and "None" not in page and "1\u00d7<wbr>24\u00d7<wbr>56" in page
    assert t[0]["shape"] == (1, 24, 56, 56) and t[0]["GPU"] is None  # the values stay as given


def test_pick_makes_a_narrower_view():
    t = Table([{"a": 1, "b": 2.0, "c": "x"}, {"a": 3, "b": 4.0, "c": "y"}], title="t", note="n")
    view = t.pick(["c", "a"])
    assert view == [{"c": "x", "a": 1}, {"c": "y", "a": 3}] and view.columns == ["c", "a"]
    assert view.title == "t" and view.note == "n" and t.pick(["a"], title="A").title == "A"
    with pytest.raises(ValueError, match="'z'"):
        t.pick(["a", "z"])


def test_a_table_without_rows_says_so_in_one_line():
    empty = Table([], title="where the two rankings disagree", note="machine")
    assert str(empty) == "where the two rankings disagree: none\nmachine"
    page = empty._repr_html_()
    assert "<table" not in page and "where the two rankings disagree</em>: none" in page
    assert "machine" in page and str(Table()) == "table: none"


def make_typed():
    rows = [{"name": "a", "median": 1.5, "params": 2}, {"name": "b", "median": None, "params": 3}]
    return Table(rows, title="typed", units={"median": "ms", "params": "M"})


def test_typed_columns_are_keyed_by_name_and_show_their_unit():
    table = make_typed()
    assert table[0]["median"] == 1.5 and table.column("params") == [2, 3]
    assert table.unit("median") == "ms" and table.unit("name") == ""
    assert table.header("median") == "median (ms)" and table.header("name") == "name"
    text = str(table).splitlines()
    assert text[1].split() == ["name", "median", "(ms)", "params", "(M)"]
    assert "<th" in table._repr_html_() and ">median (ms)</th>" in table._repr_html_()
    narrow = table.pick(["name", "median"])
    assert narrow.units == {"median": "ms"} and narrow.header("median") == "median (ms)"
    with pytest.raises(ValueError, match="no column 'median \\(ms\\)' in the table"):
        table.unit("median (ms)")


@pytest.mark.parametrize(
    ("units", "error", "match"),
    [
        (["ms"], TypeError, "units must be a dict of column -> unit, got \\['ms'\\]"),
        ({"median": ""}, TypeError, "non-empty unit strings, got 'median': ''"),
        ({"median": 3}, TypeError, "non-empty unit strings, got 'median': 3"),
        ({"medain": "ms"}, ValueError, "units names no column 'medain'"),
        (
            {"name": "ms"},
            TypeError,
            "column 'name' has unit 'ms', so it must hold numbers, got 'a'",
        ),
    ],
)
def test_bad_units_are_refused(units, error, match):
    with pytest.raises(error, match=match):
        Table([{"name": "a", "median": 1.0}], units=units)
