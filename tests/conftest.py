import os
import sys

# The example apps live at the repository root (`examples.app:app`).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
