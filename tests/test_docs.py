"""The pages in docs/ and the README cite what exists: every ``ngm_jax.module.name``
resolves, every file path they name is in the checkout, the site's sources are there."""

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]


def _resolves(dotted: str) -> bool:
  parts = dotted.split(".")
  for i in range(len(parts), 0, -1):
    try:
      obj = importlib.import_module(".".join(parts[:i]))
    except ImportError:
      continue
    for part in parts[i:]:
      if not hasattr(obj, part):
        return False
      obj = getattr(obj, part)
    return True
  return False


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_cited_library_name_exists(page):
  names = set(re.findall(r"\bngm_jax(?:\.[A-Za-z_]\w*)+", page.read_text()))
  missing = sorted(n for n in names if not _resolves(n))
  assert not missing, f"{page.name} cites {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_cited_file_exists(page):
  paths = {p.rstrip(".,:;") for p in re.findall(
      r"`((?:docs|experiments|ngm_jax|tests)/[^`\s]*)`", page.read_text())}
  missing = sorted(p for p in paths if not any(c in p for c in "<>{*")
                   and not p.startswith("docs/_build")  # made by the docs build
                   and not (ROOT / p).exists())
  assert not missing, f"{page.name} names {missing}"


def test_the_checks_fail_on_a_wrong_name():
  assert _resolves("ngm_jax.execution.default_execution")
  assert not _resolves("ngm_jax.experiment.default_execution")


def test_the_site_has_its_sources_and_pages():
  index = (ROOT / "docs" / "index.md").read_text()
  for page in ("getting_started", "tutorial", "cli", "api", "results", "analysis", "comparison"):
    assert (ROOT / "docs" / f"{page}.md").is_file() and f"\n{page}\n" in index, page
  assert "sphinxarg.ext" in (ROOT / "docs" / "conf.py").read_text()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_path_of_the_development_machine(page):
  """Data folders are written DIR: no path that exists only where the docs were measured."""
  found = re.findall(r"\S*(?:shared/data|/work/|path/to/)\S*", page.read_text())
  assert not found, f"{page.name}: {found}"
