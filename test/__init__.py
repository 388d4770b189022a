"""
The msnp test suite.

This file makes C{test/} a package, so that C{python -m twisted.trial test}
from the repository root runs this suite (the current directory comes
first on C{sys.path}) rather than CPython's own C{test} package.
"""
