"""
Suite-wide test settings.

Accounts created by tests hash their passwords with scrypt at
L{msnp.server.passwords.TEST_COST} (microseconds) instead of the
production cost, so hundreds of accounts cost nothing. Production code
never changes L{msnp.server.passwords.defaultCost}.
"""

from msnp.server import passwords

passwords.defaultCost = passwords.TEST_COST
