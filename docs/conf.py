"""Sphinx configuration for django_dbq's documentation.

Build with ``sphinx-build -W -b html docs docs/_build/html``. The reference is
written by hand, so Django does not need to be configured to build the docs.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

project = "django_dbq"
author = "django_dbq developers"
copyright = "django_dbq developers"
release = re.search(
    r'__version__ = "([^"]+)"', (ROOT / "django_dbq" / "__init__.py").read_text()
).group(1)
version = release

extensions: list[str] = []
root_doc = "index"
exclude_patterns = ["_build"]
highlight_language = "none"  # plain "::" blocks are output, not code
pygments_style = "sphinx"

html_theme = "alabaster"
html_theme_options = {
    "description": "A job queue for Django that needs nothing but your database.",
    "fixed_sidebar": True,
}
html_static_path: list[str] = []
