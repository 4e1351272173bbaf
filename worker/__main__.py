"""`python -m worker` is the `tenant-sync` command."""

from worker.cli import main

main()
