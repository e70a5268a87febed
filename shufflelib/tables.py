"""A list of result rows that prints as text and renders as an HTML table in a notebook.

Every measurement in the book comes back as a :class:`Table`, so a notebook shows it by ending a
cell with it, and a test reads it like a list of dicts.

Columns are typed: a column's key is its name alone (``"median"``), and a measured quantity's unit
is declared once in ``units`` (``{"median": "ms"}``). A unit column holds numbers (or ``None``
where there is no value), and its header reads ``median (ms)`` in print, in HTML and on a plot's
axis (:meth:`Table.header`). So code reads ``row["median"]`` and never parses a unit, or a batch
size, back out of a column's name.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Table", "count"]

PAD = "padding:0.12em 0.3em"


def count(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1: ``count(1, "thread")`` is "1 thread"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _fmt(value: Any) -> str:
    if value is None:  # no value (a paper that gives none): a dash, not Python's word
        return "\u2014"
    if isinstance(value, tuple) and len(value) >= 3 and all(isinstance(v, int) for v in value):
        return "\u00d7".join(str(v) for v in value)  # a shape: (1, 24, 56, 56) -> 1x24x56x56
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1e4 or abs(value) < 1e-3:
            return f"{value:.3g}"
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


class Table(list):
    """Rows (dicts with the same keys) plus an optional title, footnote and column units.

    ``units`` maps a column's name to its unit (``{"median": "ms", "params": "M"}``); such a
    column must hold numbers or ``None``. Units travel with the table: :meth:`pick` keeps them.
    """

    def __init__(
        self,
        rows: Iterable[Mapping[str, Any]] = (),
        title: str = "",
        note: str = "",
        units: Mapping[str, str] | None = None,
    ):
        if isinstance(rows, str | bytes | Mapping) or not isinstance(rows, Iterable):
            raise TypeError(f"rows must be an iterable of dicts (one per row), got {rows!r:.80}")
        rows = list(rows)
        for i, r in enumerate(rows):
            if not isinstance(r, Mapping):
                raise TypeError(f"rows[{i}] must be a dict of column -> value, got {r!r:.80}")
        for name, value in (("title", title), ("note", note)):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a str, got {value!r:.80}")
        super().__init__(dict(r) for r in rows)
        self.title = title
        self.note = note
        self.units = self._checked_units(units)

    def _checked_units(self, units: Mapping[str, str] | None) -> dict[str, str]:
        """``units`` as a dict, checked: str -> non-empty str, each a column holding numbers."""
        if units is None:
            return {}
        if not isinstance(units, Mapping):
            raise TypeError(f"units must be a dict of column -> unit, got {units!r:.80}")
        columns = self.columns
        for name, unit in units.items():
            if not isinstance(name, str) or not isinstance(unit, str) or not unit:
                raise TypeError(
                    f"units must map column names to non-empty unit strings, got {name!r}: {unit!r}"
                )
            if self and name not in columns:
                raise ValueError(f"units names no column {name!r}; the table has {columns}")
            for i, row in enumerate(self):
                if not _is_number(row.get(name)):
                    raise TypeError(
                        f"column {name!r} has unit {unit!r}, so it must hold numbers, got "
                        f"{row.get(name)!r:.80} in row {i}"
                    )
        return dict(units)

    def unit(self, name: str) -> str:
        """The unit of column ``name`` ("ms"), or "" for a column without one."""
        self._check_column(name)
        return self.units.get(name, "")

    def header(self, name: str) -> str:
        """Column ``name`` as its header and axis label show it: ``median (ms)``."""
        unit = self.unit(name)
        return f"{name} ({unit})" if unit else name

    def _check_column(self, name: str) -> None:
        if name not in self.columns:
            raise ValueError(f"no column {name!r} in the table; it has {self.columns}")

    @property
    def columns(self) -> list[str]:
        cols: list[str] = []
        for row in self:
            cols.extend(k for k in row if k not in cols)
        return cols

    def column(self, name: str) -> list[Any]:
        """The values of one column, in row order."""
        self._check_column(name)
        return [row.get(name) for row in self]

    def pick(self, columns: Iterable[str], title: str | None = None) -> Table:
        """A new Table of only ``columns``, in that order, with this one's note; ``title``
        defaults to this one's. For showing a wide table as narrower views (chapter 11)."""
        columns = list(columns)
        missing = [c for c in columns if c not in self.columns]
        if missing or not columns:
            raise ValueError(
                f"no column(s) {missing or columns!r} in the table; it has {self.columns}"
            )
        rows = ({c: row.get(c) for c in columns} for row in self)
        units = {c: u for c, u in self.units.items() if c in columns}
        title = self.title if title is None else title
        return Table(rows, title=title, note=self.note, units=units)

    def __str__(self) -> str:
        if not self:  # a table with no rows says so in one line
            return "\n".join(x for x in (f"{self.title or 'table'}: none", self.note) if x)
        cols = self.columns
        cells = [[_fmt(r.get(c, "")) for c in cols] for r in self]
        heads = [self.header(c) for c in cols]
        widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(heads)]
        lines = [self.title] if self.title else []
        lines.append("  ".join(h.ljust(w) for h, w in zip(heads, widths)))
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        note = f"<p><small>{html.escape(self.note)}</small></p>" if self.note else ""
        if not self:  # no rows: one line, not a caption squeezed over an empty table
            return f"<p><em>{html.escape(self.title or 'table')}</em>: none</p>{note}"
        cols = self.columns
        head = "".join(f'<th style="{PAD}">{html.escape(self.header(c))}</th>' for c in cols)

        def cell(v: Any) -> str:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return f'<td style="text-align:right;{PAD}">{html.escape(_fmt(v))}</td>'
            # text may wrap after a separator (layer.names, 1x24x56x56 shapes, snake_case)
            text = re.sub(r"([_/\u00d7]|\.(?=[A-Za-z]))", r"\1<wbr>", html.escape(_fmt(v)))
            return f'<td style="text-align:left;{PAD}">{text}</td>'

        body = "".join("<tr>" + "".join(cell(r.get(c, "")) for c in cols) + "</tr>" for r in self)
        caption = f"<caption>{html.escape(self.title)}</caption>" if self.title else ""
        return (
            f'<table style="font-size:0.8em">{caption}<thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>{note}"
        )
