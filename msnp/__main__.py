# -*- test-case-name: test.test_demo -*-
"""
C{python -m msnp}: the command line.

The commands live in their own modules: C{demo} in L{msnp.demo}, C{chat}
and C{send} in L{msnp.terminal} (on the console of L{msnp.console}). This
module only dispatches, so C{--help} and C{--version} answer without
loading the network stack.
"""

from __future__ import annotations

import sys

from twisted.internet.task import react

USAGE = """\
usage: python -m msnp <command> [options]

commands:
  demo    start an embedded local MSNP18 network, sign two accounts in,
          show presence and a conversation both ways, sign out (exit 0 on success)
  chat    an interactive console (embedded network and an echo contact by default;
          the options of twistd msnp for another network)
  send    send one message: python -m msnp send --to EMAIL TEXT...
          (exit 0 when delivered, 1 when not)

  python -m msnp --version        the version of msnp
  python -m msnp chat --help      options of the console
  twistd msnp --help              the long-running client service
  twistd msnp-server --help       the local network as a service
"""

DEMO_USAGE = "usage: python -m msnp demo\n\nRun the MSNP18 demo on an embedded local network.\n"


def main(argv: list[str]) -> int:
    """
    Dispatch to a subcommand; return the exit code (the subcommands exit
    through L{react}).
    """
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command in ("--version", "-V", "version"):
        from msnp import __version__

        sys.stdout.write(f"msnp {__version__}\n")
        return 0
    if command == "demo":
        if rest and rest[0] in ("-h", "--help"):
            sys.stdout.write(DEMO_USAGE)
            return 0
        if rest:
            sys.stderr.write(f"python -m msnp demo takes no arguments, not {' '.join(rest)!r}\n\n{DEMO_USAGE}")
            return 2
        from msnp.demo import demo

        react(demo)
    elif command in ("chat", "send"):
        from msnp import terminal

        run = terminal.chat if command == "chat" else terminal.send
        optionsClass = terminal.ConsoleOptions if command == "chat" else terminal.SendOptions
        # --help and argument errors before any reactor work.
        options = terminal.parse(optionsClass, rest)
        react(run, (rest, options))
    else:
        sys.stderr.write(f"unknown command {command!r}\n\n{USAGE}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
