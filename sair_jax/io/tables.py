"""The user's CSV files (pairs, expressions) and the ones the project writes, through Python's
``csv`` module: quoted fields may hold commas (``"Doe, Jane.png"``), quotes and line breaks.

:func:`read_rows` gives each non-empty row with the **physical** line number it starts on in
the file (blank lines and quoted line breaks counted), so an error names the line an editor
shows. :func:`csv_bytes` writes rows that :func:`read_rows` reads back unchanged.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from typing import Iterable, Sequence

from sair_jax.errors import UserError
from sair_jax.io.files import not_what_it_seems


@dataclasses.dataclass(frozen=True)
class Row:
  line: int  # 1-based physical line of the file the row starts on
  cells: tuple[str, ...]  # stripped of surrounding blanks

  def cell(self, i: int) -> str:
    """The ``i``-th cell, '' when the row is shorter."""
    return self.cells[i] if i < len(self.cells) else ""


def read_rows(path: str, *, what: str, header_words: Sequence[str] = ()) -> list[Row]:
  """The non-empty rows of the CSV file ``path``; a first row whose first cell is one of
  ``header_words`` (any case) is a header and left out.

  Raises:
    UserError: one line naming the file (and ``what`` it is for, e.g. ``config.data.pairs``)
      when it is missing, empty, not text, or not valid CSV (with the line).
  """
  if not os.path.isfile(path):
    raise UserError(f"{path}: no such file ({what})")
  if not_what_it_seems(path):
    raise UserError(f"{path}: {not_what_it_seems(path)} ({what})")
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      reader = csv.reader(f, strict=True)
      rows, start = [], 1
      for cells in reader:
        cells = tuple(c.strip() for c in cells)
        if any(cells):
          rows.append(Row(start, cells))
        start = reader.line_num + 1
  except UnicodeDecodeError:
    raise UserError(f"{path}: not a UTF-8 text file ({what})") from None
  except csv.Error as e:
    raise UserError(f"{path}: line {reader.line_num}: not valid CSV ({e}) ({what})") from None
  headers = {w.lower() for w in header_words}
  if rows and rows[0].cells[0].lower() in headers:
    rows = rows[1:]
  return rows


def csv_bytes(rows: Iterable[Sequence]) -> bytes:
  """Rows as CSV (fields quoted where needed, ``\\n`` line ends, None as empty), UTF-8."""
  buf = io.StringIO()
  csv.writer(buf, lineterminator="\n").writerows(
      [["" if v is None else v for v in row] for row in rows])
  return buf.getvalue().encode()
