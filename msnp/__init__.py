"""
msnp: an MSNP18 (Windows Live Messenger 2009) client library for Twisted.
"""
