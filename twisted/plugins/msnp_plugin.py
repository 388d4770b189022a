"""
The C{twistd} plugins of msnp: C{twistd msnp} (a long-running client) and
C{twistd msnp-server} (the local MSNP18 network).

Kept to declarations: the options and services live in the C{tap} modules,
which are imported only when the plugin is used.
"""

from twisted.application.service import ServiceMaker

msnpClient = ServiceMaker(
    "msnp client",
    "msnp.tap",
    "An MSNP18 client that stays signed in and runs a bot handler.",
    "msnp",
)

msnpServer = ServiceMaker(
    "msnp local network",
    "msnp.server.tap",
    "A local MSNP18 network: dispatch, notification and switchboard servers and the SSO/ABCH services.",
    "msnp-server",
)
