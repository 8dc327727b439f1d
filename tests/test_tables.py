"""The user's CSVs (pairs, expressions) through one reader (sair_jax.io.tables): quoted fields
with commas, physical line numbers in errors, and the photo flow's pairs written quoted."""

import pytest

from sair_jax.configs import smoke
from sair_jax.errors import ConfigError, UserError
from sair_jax.io import tables
from sair_jax.pipeline import inputs, wild


def test_rows_keep_quoted_commas_and_physical_line_numbers(tmp_path):
  path = tmp_path / "pairs.csv"
  path.write_text('lq,reference\n\n"Doe, Jane.png", refs/jane.npy \n\n\n"a\nb.png",x.npy\n'
                  "  ,  \nlast.png,y.npy\n")
  rows = tables.read_rows(str(path), what="pairs", header_words=("lq",))
  assert [(r.line, r.cells) for r in rows] == [
      (3, ("Doe, Jane.png", "refs/jane.npy")), (6, ("a\nb.png", "x.npy")),
      (9, ("last.png", "y.npy"))]
  assert rows[0].cell(2) == ""


def test_written_rows_read_back_unchanged(tmp_path):
  rows = [["lq", "reference", "expression"], ["Doe, Jane_face0.png", '/r/"q".npy', ""]]
  (tmp_path / "p.csv").write_bytes(tables.csv_bytes(rows))
  assert [list(r.cells) for r in tables.read_rows(str(tmp_path / "p.csv"), what="t")] == rows


@pytest.mark.parametrize("content, says", [
    (None, "no such file (config.data.pairs)"), (b"", "empty file"),
    (b"<html><body>Sign in</body></html>", "an HTML page"), (b"\xff\xfe\x00bad", "not a UTF-8"),
    (b'lq,ref\na.png,"unclosed\n', "line 2")])
def test_unreadable_csvs_are_one_line(tmp_path, content, says):
  path = tmp_path / "pairs.csv"
  if content is not None:
    path.write_bytes(content)
  with pytest.raises(UserError) as e:
    tables.read_rows(str(path), what="config.data.pairs")
  assert str(e.value).startswith(f"{path}: ") and says in str(e.value)
  assert "\n" not in str(e.value)


def _config(tmp_path, **data):
  c = smoke.get_config()
  c.data.lq, c.data.references = str(tmp_path / "lq"), ""
  c.data.update(data)
  return c


def test_pairs_errors_name_the_physical_line(tmp_path):
  (tmp_path / "lq").mkdir()
  (tmp_path / "lq" / "a.png").write_bytes(b"x")
  (tmp_path / "pairs.csv").write_text("lq,reference\n\n\na.png,a.npy\n\nb.png\n")
  with pytest.raises(ConfigError, match=r"pairs.csv: line 6 needs 'lq,reference"):
    inputs.discover(_config(tmp_path, pairs=str(tmp_path / "pairs.csv")))
  (tmp_path / "pairs.csv").write_text("lq,reference,expression\n\n\na.png,a.npy,grumpy\n")
  with pytest.raises(ConfigError, match=r"pairs.csv: line 4: unknown expression 'grumpy'"):
    inputs.discover(_config(tmp_path, pairs=str(tmp_path / "pairs.csv")))


@pytest.mark.parametrize("row, message", [
    ("Doe, Jane.png,refs/jane.npy", r"line 2: unknown expression 'refs/jane.npy'.*quotes"),
    ("Doe, Jane.png,refs/Doe, Jane.npy,happy", r"line 2 has 5 fields.*double quotes")])
def test_an_unquoted_comma_is_reported_as_one(tmp_path, row, message):
  """A name with a comma written without quotes splits into extra fields: the line says to
  quote it (not only that a path is an unknown expression)."""
  (tmp_path / "lq").mkdir()
  (tmp_path / "lq" / "Doe, Jane.png").write_bytes(b"x")
  (tmp_path / "pairs.csv").write_text(f"lq,reference,expression\n{row}\n")
  with pytest.raises(ConfigError, match=message):
    inputs.discover(_config(tmp_path, pairs=str(tmp_path / "pairs.csv")))


def test_a_name_with_a_comma_pairs_through_the_photo_flow(tmp_path):
  """A quoted name with a comma pairs a photo with its reference, and a test set's LQ with
  its reference."""
  (tmp_path / "refs").mkdir()
  (tmp_path / "refs" / "Doe, Jane.npy").write_bytes(b"x")
  photo = wild.Photo("Doe, Jane", str(tmp_path / "Doe, Jane.png"), (10, 10), (None,), ())
  (tmp_path / "pairs.csv").write_text('photo,reference\n\n"Doe, Jane.png","Doe, Jane.npy"\n')
  c = _config(tmp_path, pairs=str(tmp_path / "pairs.csv"), references=str(tmp_path / "refs"),
              photos=str(tmp_path))
  pairing = wild.pair_references(c, [photo])
  assert pairing.references == {"Doe, Jane_face0": str(tmp_path / "refs" / "Doe, Jane.npy")}
  assert not pairing.problems
  ref = str(tmp_path / "refs" / "Doe, Jane.npy")
  pairs = tmp_path / "written.csv"
  pairs.write_bytes(tables.csv_bytes([["lq", "reference"], ["Doe, Jane_face0.png", ref]]))
  (tmp_path / "lq").mkdir()
  (tmp_path / "lq" / "Doe, Jane_face0.png").write_bytes(b"x")
  items, failures = inputs.discover(_config(tmp_path, pairs=str(pairs)))
  assert [(it.name, it.reference) for it in items] == [("Doe, Jane_face0", ref)] and not failures


def test_a_csv_reference_is_found_beside_the_csv_then_in_the_references_folder(tmp_path):
  """The rule every pairs CSV (test sets, photos, clips) follows for its reference cells."""
  csv = tmp_path / "lists" / "pairs.csv"
  refs = tmp_path / "refs"
  for folder in (csv.parent, refs):
    folder.mkdir()
  (csv.parent / "beside.png").write_bytes(b"")
  (refs / "beside.png").write_bytes(b"")
  (refs / "only_there.png").write_bytes(b"")
  find = lambda cell, folder=str(refs): inputs.csv_reference(cell, str(csv), folder)
  assert find("beside.png") == str(csv.parent / "beside.png")  # the CSV's folder first
  assert find("only_there.png") == str(refs / "only_there.png")
  assert find(str(refs / "beside.png")) == str(refs / "beside.png")  # absolute: as it is
  # nowhere: named where the CSV is, or in the folder when one is configured (its reader says
  # which file is missing)
  assert find("absent.png", "") == str(csv.parent / "absent.png")
  assert find("absent.png") == str(refs / "absent.png")
