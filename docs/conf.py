"""Sphinx configuration of the ngm-jax documentation site.

Build (README, "Documentation"):

    pip install -e ".[docs]"
    sphinx-build -W --keep-going -b html docs docs/_build/html

MyST Markdown pages, the API reference from the docstrings (autodoc with
napoleon: the docstrings are Google style), the command-line reference from
the argument parser (sphinx-argparse), and the tutorial, a MyST Markdown
notebook executed during the build (myst-nb), as optax's and flax's sites do.
"""

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)  # the checkout's ngm_jax, installed or not
# The tutorial's kernel is another process: it finds the checkout the same way.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
os.environ.setdefault("JAX_PLATFORMS", "cpu")

project = "ngm-jax"
author = "ngm-jax maintainers"
copyright = "ngm-jax maintainers"  # pylint: disable=redefined-builtin

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinxarg.ext",
]

# Only the pages: the saved runs, analyses and benchmark rows under docs/ hold
# Markdown tables of their own (table.md, ablations.md) that are files, not pages.
exclude_patterns = ["_build", "runs", "analysis", "bench", "figures", "README.md",
                    "Thumbs.db", ".DS_Store"]
source_suffix = {".md": "myst-nb", ".rst": "restructuredtext"}

myst_heading_anchors = 3  # links to sections, #like-this, as on GitHub
myst_enable_extensions = ["dollarmath"]

# The tutorial runs at every build; an error in it fails the build.
nb_execution_mode = "force"
nb_execution_timeout = 300
nb_execution_raise_on_error = True
nb_execution_show_tb = True

autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "description"
autodoc_mock_imports = ["tensorflow", "tensorflow_datasets"]
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # "Attributes:" as fields: a NamedTuple's fields are members too

html_theme = "sphinx_book_theme"
html_title = "ngm-jax"
html_theme_options = {"show_toc_level": 2}

# Flags stay as typed: no "--" turned into a dash, in the pages or the argparse text.
smartquotes_action = "qe"
