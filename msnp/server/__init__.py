"""
The local MSNP18 network: dispatch, notification and switchboard servers,
the Passport STS and the ABCH services, all sharing one L{AccountStore}.

Start one with L{LocalNetwork}; it never contacts anything but loopback
unless told to listen elsewhere.
"""

from msnp.server.accounts import AccountStore
from msnp.server.network import LocalNetwork

__all__ = ["AccountStore", "LocalNetwork"]
