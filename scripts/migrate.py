#!/usr/bin/env python3
"""Entry point: find the pgmigrate package next to this script and run its CLI.

Run it with the project's virtualenv (``.venv/bin/python scripts/migrate.py``); started by another
interpreter that lacks the dependencies, it hands over to ``.venv/bin/python`` when there is one.
"""

import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if importlib.util.find_spec("psycopg") is None:  # found, not imported: the fast commands never load it
    venv = ROOT / ".venv"
    venv_python = venv / "bin" / "python"
    if venv_python.exists() and Path(sys.prefix).resolve() != venv.resolve():  # not already the venv's
        os.execv(str(venv_python), [str(venv_python), *sys.argv])
    sys.exit("error: the dependencies are not installed; run 'make venv' and use .venv/bin/python")

from pgmigrate.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
