"""
C{python -m msnp}: the demo and the console.
"""

from __future__ import annotations

import sys

from msnp.wire import Direction, parseCommand

SEED = [
    b"VER 1 MSNP18 MSNP17 CVR0\r\n",
    b"CVR 2 0x0804 winnt 5.1 i386 MSNMSGR 14.0.8089.0726 msmsgs test@live.cn\r\n",
    b"USR 3 SSO I test@live.cn\r\n",
]


def main(argv: list[str]) -> int:
    for line in SEED:
        print(parseCommand(line, Direction.FROM_CLIENT))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
