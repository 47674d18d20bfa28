"""`python -m bot` is the `carebot` command."""

from bot.cli import main

main()
