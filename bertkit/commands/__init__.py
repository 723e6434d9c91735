"""The command-line commands: each module has `add_arguments(parser)` and `run(args)`, a thin layer over a
library function (`bertkit/cli.py` holds the table)."""
