"""
Write a Sphinx inventory (objects.inv) of Python's built-in names, for the
API docs build when docs.python.org's own inventory cannot be fetched
(see docs/api-docs.md). Usage: python .ci/inventory.py OUTPUT
"""

import builtins
import sys
import zlib

BASE = "https://docs.python.org/3/"


def entries():
    for name in ("None", "True", "False", "NotImplemented", "Ellipsis"):
        yield name, "py:data", f"library/constants.html#{name}"
    for name, value in sorted(vars(builtins).items()):
        if name.startswith("_"):
            continue
        if isinstance(value, type) and issubclass(value, BaseException):
            yield name, "py:exception", f"library/exceptions.html#{name}"
        elif isinstance(value, type):
            yield name, "py:class", f"library/stdtypes.html#{name}"
        elif callable(value):
            yield name, "py:function", f"library/functions.html#{name}"


def main(output):
    header = b"# Sphinx inventory version 2\n# Project: Python\n# Version: 3\n"
    header += b"# The remainder of this file is compressed using zlib.\n"
    body = "".join(f"{name} {role} 1 {uri} -\n" for name, role, uri in entries())
    with open(output, "wb") as f:
        f.write(header + zlib.compress(body.encode("utf-8")))


if __name__ == "__main__":
    main(sys.argv[1])
