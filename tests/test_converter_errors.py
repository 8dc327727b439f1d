"""One-line errors from the single-file torch converters: a wrong network, a truncated file, a
missing file, and the files a failed download leaves (empty, an HTML page, a Git LFS pointer),
each said for what it is. Each must exit 1 with exactly one ``error: ...`` line and write
nothing."""

import os
import subprocess
import sys

import pytest

from conftest import fixture
from converters import arcface, e4e, fid_inception

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# converter module, a fixture it converts, another network's file, what the refusal says
CONVERTERS = {
    "arcface": (arcface, "iresnet_1111.pth", "e4e_narrow_a.pt", "not an arcface_torch IResNet"),
    "e4e": (e4e, "e4e_narrow_a.pt", "iresnet_1111.pth", "not an e4e checkpoint"),
    "fid_inception": (fid_inception, "iresnet_1111.pth", "lpips_alexnet_features.pth",
                      "not an FID-Inception"),
}


def _sources(tmp_path, name):
  """(source path, expected message) for each way a source can be wrong."""
  _, good, other, refusal = CONVERTERS[name]
  data = fixture(good).read_bytes()
  truncated = tmp_path / f"truncated{os.path.splitext(good)[1]}"
  truncated.write_bytes(data[: len(data) // 2])
  downloads = {"empty": (b"", "empty file"),
               "html page": (b"<!doctype html><html><title>Google Drive - Virus scan warning",
                             "an HTML page, not the data (the download failed"),
               "lfs pointer": (b"version https://git-lfs.github.com/spec/v1\noid sha256:9f3\n",
                               "a Git LFS pointer, not the data")}
  cases = {"wrong network": (fixture(other), refusal),
           "truncated": (truncated, truncated.name),
           "absent": (tmp_path / "absent.pt", "no such file")}
  for case, (data, says) in downloads.items():
    (tmp_path / f"{case}.pth").write_bytes(data)
    cases[case] = (tmp_path / f"{case}.pth", says)
  return cases


@pytest.mark.parametrize("name", sorted(CONVERTERS))
@pytest.mark.parametrize("case", ["wrong network", "truncated", "absent", "empty", "html page",
                                  "lfs pointer"])
def test_converter_errors_are_one_line(tmp_path, capsys, name, case):
  src, message = _sources(tmp_path, name)[case]
  dst = tmp_path / "out"
  with pytest.raises(SystemExit) as exit_info:
    CONVERTERS[name][0].cli(str(src), str(dst))
  assert exit_info.value.code == 1
  err = capsys.readouterr().err
  assert err.startswith("error: ") and err.count("\n") == 1 and message in err
  assert not dst.exists()


@pytest.mark.parametrize("name", ["arcface", "e4e"])
def test_cli_entry_point_reports_wrong_file(tmp_path, name):
  _, _, other, refusal = CONVERTERS[name]
  proc = subprocess.run(
      [sys.executable, "-m", f"converters.{name}", "--src", str(fixture(other)),
       "--dst", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 1
  err = proc.stderr
  assert err.startswith("error: ") and err.count("\n") == 1 and refusal in err
