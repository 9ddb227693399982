"""The release workflow's decisions, kept here so that `make test` checks them.

    python .ci/release.py version v0.2.0
        prints 0.2.0, or fails if the tag is not "v" + the package version
        (server/monoceros/_version.py): a tag names exactly the release it publishes.

    python .ci/release.py image-tags v0.2.0 3.13 ghcr.io/monoceros-server/monoceros
        prints the image's tags, one a line: <version>-py<python> for every image, and
        <version> and latest for the image of DEFAULT_PYTHON (the Dockerfile's default base).

Standard library only; .github/workflows/release.yml runs it, tests/unit/test_release.py tests it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

VERSION_FILE = Path(__file__).resolve().parents[1] / "server" / "monoceros" / "_version.py"
# The Python of the image tagged <version> and latest: docker/Dockerfile's default PYTHON_IMAGE.
DEFAULT_PYTHON = "3.11"


def package_version() -> str:
    """__version__ from _version.py, read without importing the package."""
    for node in ast.parse(VERSION_FILE.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "__version__":
            value = ast.literal_eval(node.value)
            if isinstance(value, str):
                return value
    raise LookupError(f"no __version__ in {VERSION_FILE}")


def version_for_tag(tag: str) -> str:
    version = package_version()
    if tag != f"v{version}":
        raise ValueError(f"tag {tag!r} does not match the package version {version!r}")
    return version


def image_tags(tag: str, python: str, repository: str) -> list[str]:
    version = version_for_tag(tag)
    tags = [f"{repository}:{version}-py{python}"]
    if python == DEFAULT_PYTHON:
        tags += [f"{repository}:{version}", f"{repository}:latest"]
    return tags


def main(argv: list[str]) -> int:
    try:
        match argv:
            case ["version", tag]:
                print(version_for_tag(tag))
            case ["image-tags", tag, python, repository]:
                print("\n".join(image_tags(tag, python, repository)))
            case _:
                print(__doc__, file=sys.stderr)
                return 2
    except ValueError as exc:
        print(f"release.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
