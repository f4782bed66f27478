"""Many databases in one run (``--targets FILE`` / ``--targets-query SQL``): tenants, shards, regions.

``targets`` reads the databases, ``scheduler`` runs one job per database in threads within the
limits (--parallel, --per-host, --canary, --max-failures), ``jobs`` is what a command does on one
database (through the engine's Runner), ``cancel`` stops them on Ctrl-C, ``report`` prints, and
``command`` ties them together for the CLI. ``options`` holds the command-line options.
"""
