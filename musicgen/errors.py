"""One exception type for problems the user can fix, and the CLI wrapper that prints it."""

import sys


class UserError(Exception):
    """A problem with the user's input or arguments: printed as one line, exit code 2."""


def run_cli(main):
    """Run a script's main(); a UserError becomes one line on stderr and exit code 2.

    Bugs keep their traceback. Ctrl-C exits 130 with one line: every script
    writes its outputs atomically, so an interrupted run leaves nothing half-written.
    """
    try:
        main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; run the same command again to continue", file=sys.stderr)
        sys.exit(130)
