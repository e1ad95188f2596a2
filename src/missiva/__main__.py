"""`python -m missiva` runs the command line."""

from missiva.cli import main

main()
