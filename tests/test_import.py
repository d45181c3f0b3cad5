"""Importing the package and the CLI starts nothing: no JAX backend, no matplotlib,
no checkout code; the package's modules import one another without circles."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_starts_no_backend_and_no_plotting():
  # jax.distributed.initialize must come before any backend starts, so the
  # CLI's imports (the benchmark registry included) must not start one.
  code = ("import sys, ngm_jax.cli, ngm_jax; from jax._src import xla_bridge as xb; "
          "print(bool(xb._backends), 'matplotlib' in sys.modules, 'experiments' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       cwd=ROOT)
  assert out.stdout.split() == ["False", "False", "False"]  # the CLI never imports experiments


def test_only_the_library_is_installed():
  import tomllib
  from setuptools import find_packages
  project = tomllib.loads((ROOT / "pyproject.toml").read_text())
  find = project["tool"]["setuptools"]["packages"]["find"]
  packages = find_packages(str(ROOT), include=find["include"])
  assert "ngm_jax.cli" in packages
  assert not [p for p in packages if not p.startswith("ngm_jax")], packages
  assert project["project"]["scripts"]["ngm-jax"] == "ngm_jax.cli:main"


def _imports(module_file: Path, package: str) -> set[str]:
  """Modules of ``package`` that ``module_file`` imports anywhere (inside
  functions and ``if TYPE_CHECKING:`` too)."""
  found = set()
  for node in ast.walk(ast.parse(module_file.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(package):
      found.add(node.module)
      found.update(f"{node.module}.{alias.name}" for alias in node.names)
    elif isinstance(node, ast.Import):
      found.update(a.name for a in node.names if a.name.startswith(package))
  return found


def test_no_import_circles_in_the_package():
  files = {".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): f
           for f in (ROOT / "ngm_jax").rglob("*.py")}
  # The top-level __init__ re-exports everything; a subpackage's __init__ may import its
  # own modules (its parts do not import it back).
  graph = {m: {d for d in _imports(f, "ngm_jax") if d in files and d not in (m, "ngm_jax")}
           for m, f in files.items() if m != "ngm_jax"}
  state: dict[str, int] = {}
  path: list[str] = []

  def visit(module):  # depth-first; a grey node met again closes a circle
    state[module] = 1
    path.append(module)
    for dep in sorted(graph.get(module, ())):
      if state.get(dep) == 1:
        raise AssertionError("import circle: " + " -> ".join(path[path.index(dep):] + [dep]))
      if dep not in state:
        visit(dep)
    path.pop()
    state[module] = 2

  for module in sorted(graph):
    if module not in state:
      visit(module)
