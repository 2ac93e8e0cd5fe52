"""Regenerates the README's pictures in docs/ with the commands the README gives users:

    python docs/make_pictures.py

- docs/moons.png   python -m micrograd_c.demo --plot docs/moons.png
- docs/neuron.svg  python examples/neuron_draw.py docs/neuron.svg
- docs/digits.png  python -m micrograd_c.digits --plot docs/digits.png

Needs the dev install (`pip install -e ".[dev]"`) and Graphviz's dot program.  Each command is
seeded, so a rerun redraws the same pictures (up to matplotlib's and Graphviz's versions).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PICTURES = {
    "docs/moons.png": ["-m", "micrograd_c.demo", "--plot", "docs/moons.png"],
    "docs/neuron.svg": ["examples/neuron_draw.py", "docs/neuron.svg"],
    "docs/digits.png": ["-m", "micrograd_c.digits", "--plot", "docs/digits.png"],
}


def main() -> int:
    for picture, args in PICTURES.items():
        print(f"{picture}: python {' '.join(args)}", flush=True)
        subprocess.run([sys.executable, *args], cwd=ROOT, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
