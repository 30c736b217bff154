"""`python -m nincompile` runs the CLI."""

from .cli import main

main()
