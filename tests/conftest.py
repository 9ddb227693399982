import os
import sys

# The example apps live at the repository root (`examples.app:app`).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# `make pytest-compiled` runs tests against build/compiled: make sure they really do, rather
# than passing on the plain-Python source because the compiled build is missing.
if os.environ.get("MONOCEROS_EXPECT_COMPILED") == "1":
    from monoceros.buildinfo import build_info

    if not build_info().compiled:
        raise SystemExit(
            f"MONOCEROS_EXPECT_COMPILED=1 but the hot path is plain Python: {build_info().reason}"
            " (is a C compiler installed? see setup.py)"
        )
