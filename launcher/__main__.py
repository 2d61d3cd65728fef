"""`python -m launcher` runs the CLI, as the `launch` console script does."""

from launcher.cli import run_main

run_main()
