"""Finding input files in a folder by name: every file found, none dropped without a word.

Files are matched by extension whatever its case (``face0.JPG``, ``face2.Npy``) and keyed by
their name without the extension (the stem), which names every output. Two files with one stem
(``face0.png`` and ``face0.jpg``) would make that name ambiguous: both are left out of
:attr:`Listing.files` and named together in :attr:`Listing.clashes`, which callers report in one
line (:meth:`Listing.clash_line`) and record. Hidden files (``.name``) are not inputs.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterable

from sair_jax.errors import UserError


def has_extension(name: str, extensions: Iterable[str]) -> bool:
  """Whether ``name`` ends with one of ``extensions`` (``.png``...), ignoring case."""
  return os.path.splitext(name)[1].lower() in {e.lower() for e in extensions}


def stem(path: str) -> str:
  """``dir/face0.png`` -> ``face0``."""
  return os.path.splitext(os.path.basename(path))[0]


@dataclasses.dataclass(frozen=True)
class Listing:
  """The input files of one folder, by stem."""
  folder: str
  files: dict[str, str]  # stem -> path, for stems held by one file only
  clashes: dict[str, tuple[str, ...]]  # stem -> its files (sorted), for stems held by several

  def paths(self) -> list[str]:
    """The unambiguous files, sorted by path."""
    return sorted(self.files.values())

  def clash_line(self, name: str, what: str = "files") -> str:
    """One line naming every file of a clashing stem: ``a.jpg, a.png: two WHAT named 'a'...``."""
    paths = self.clashes[name]
    count = {2: "two", 3: "three"}.get(len(paths), str(len(paths)))
    return (f"{', '.join(paths)}: {count} {what} named '{name}' (names must be unique "
            "without the extension); rename all but one")

  def clash_lines(self, what: str = "files") -> list[str]:
    return [self.clash_line(name, what) for name in sorted(self.clashes)]

  def find(self, names: Iterable[str]) -> tuple[str | None, str | None]:
    """The file of the first of ``names`` present: ``(path, None)``; ``(None, clash line)``
    when that name is held by several files; ``(None, None)`` when none is present."""
    for name in names:
      if name in self.files:
        return self.files[name], None
      if name in self.clashes:
        return None, self.clash_line(name)
    return None, None


def list_folder(folder: str, extensions: Iterable[str], what: str = "folder") -> Listing:
  """The files directly in ``folder`` whose extension (any case) is one of ``extensions``.

  Raises:
    UserError: ``folder`` does not exist (one line; ``what`` names the setting).
  """
  if not os.path.isdir(folder):
    raise UserError(f"{folder}: no such folder ({what})")
  by_stem: dict[str, list[str]] = {}
  for name in sorted(os.listdir(folder)):
    path = os.path.join(folder, name)
    if name.startswith(".") or not has_extension(name, extensions) or not os.path.isfile(path):
      continue
    by_stem.setdefault(os.path.splitext(name)[0], []).append(path)
  return Listing(folder, {s: p[0] for s, p in by_stem.items() if len(p) == 1},
                 {s: tuple(p) for s, p in by_stem.items() if len(p) > 1})
