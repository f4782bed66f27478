#!/usr/bin/env python3
"""Entry point: find the pgmigrate package next to this script and run its CLI.

Run it with the project's virtualenv (``.venv/bin/python scripts/migrate.py``); started by another
interpreter that lacks the dependencies, it hands over to ``.venv/bin/python`` when there is one.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
sys.path.insert(0, ROOT)
VENV = os.path.join(ROOT, ".venv")

if os.path.realpath(sys.prefix) != os.path.realpath(VENV):  # another interpreter: has it what we need?
    import importlib.util

    if importlib.util.find_spec("psycopg") is None:  # found, not imported: the fast commands never load it
        venv_python = os.path.join(VENV, "bin", "python")
        if os.path.exists(venv_python):
            os.execv(venv_python, [venv_python, *sys.argv])
        sys.exit("error: the dependencies are not installed; run 'make venv' and use .venv/bin/python")

from pgmigrate.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
