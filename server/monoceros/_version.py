"""The version of monoceros: the one place it is written.

setuptools reads it for the package metadata (pyproject.toml, `dynamic = ["version"]`), and
`monoceros.__version__`, `monoceros --version` and the `monoceros_build_info` metric import it
from here.
"""

__version__ = "0.2.0"
