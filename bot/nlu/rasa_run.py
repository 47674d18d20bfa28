"""`rasa run` with its auth token taken from the environment, not the command line (run in the Rasa environment).

Rasa 3.6 takes its token only as `rasa run --auth-token TOKEN`, and a command line is visible to every user of
the machine (`ps`, /proc/PID/cmdline); a process's environment is readable only by its own user. NluServer
starts this module with the Python of the Rasa environment (`python -m bot.nlu.rasa_run --enable-api …`) and the
token in CAREBOT_RASA_AUTH_TOKEN; it removes the variable from its environment (so nothing Rasa starts inherits
it) and runs Rasa's own command-line entry point with the token added to its arguments inside the process, which
leaves the visible command line unchanged.

It imports nothing of carebot's (the Rasa environment has none of carebot's dependencies) and must stay valid
Python 3.10.
"""

from __future__ import annotations

import os
import sys

TOKEN_VARIABLE = "CAREBOT_RASA_AUTH_TOKEN"


def rasa_arguments(arguments: list[str], token: str) -> list[str]:
    """What Rasa's entry point reads as sys.argv: `rasa run` with `arguments` and the auth token."""
    return ["rasa", "run", *arguments, "--auth-token", token]


def main() -> None:
    token = os.environ.pop(TOKEN_VARIABLE, "")
    if not token:
        sys.exit(f"error: {TOKEN_VARIABLE} is not set: the Rasa server needs its auth token")
    from rasa.__main__ import main as rasa_main  # only in the Rasa environment

    sys.argv = rasa_arguments(sys.argv[1:], token)
    rasa_main()


if __name__ == "__main__":
    main()
