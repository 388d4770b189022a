# -*- test-case-name: test.test_soap_client -*-
"""
The names both ends of the HTTP services agree on: SOAP and ABCH
namespaces, the ABCH action prefix and the personal address-book id, and
the Passport token addresses of the WLM 2009 token set (reference sections
2.2 and 3.2).

The local network's services answer with exactly the names the client
sends; sharing them here, in a module free of any HTTP or client code,
keeps both sides of the wire in step and lets L{msnp.server} import them.
"""

# -- Passport (SSO) --------------------------------------------------------------

#: The master ticket-granting token (always requested, always first).
PASSPORT_TB = "http://Passport.NET/tb"
#: The NS login token: its ticket goes into C{USR SSO S}, its secret is the MBI key.
MESSENGER_CLEAR = "messengerclear.live.com"
#: Web/Hotmail token (OIM retrieval, inbox URL).
MESSENGER_WEB = "messenger.msn.com"
#: OIM sending token.
MESSENGER_SECURE = "messengersecure.live.com"
#: Address book and sharing service token.
CONTACTS = "contacts.msn.com"
#: Storage service token (roaming profile, display picture).
STORAGE = "storage.msn.com"
#: "What's New" social service token.
SUP = "sup.live.com"

#: The policy the NS names in C{USR SSO S} for WLM 2009.
MBI_KEY_OLD = "MBI_KEY_OLD"

#: SOAP envelope namespaces.
SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"


# -- ABCH SOAP ---------------------------------------------------------------------

#: The namespace of every ABCH element.
AB_NS = "http://www.msn.com/webservices/AddressBook"
#: SOAP 1.1.
SOAP_NS = SOAP11_NS
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
SOAPENC_NS = "http://schemas.xmlsoap.org/soap/encoding/"
#: The prefix of every C{SOAPAction}.
ACTION_PREFIX = "http://www.msn.com/webservices/AddressBook/"
#: The id of the personal address book.
PERSONAL_AB_ID = "00000000-0000-0000-0000-000000000000"

#: The namespace of every RSI (offline-message retrieval) element.
RSI_NS = "http://www.hotmail.msn.com/ws/2004/09/oim/rsi"
#: At most this many ids in one RSI C{DeleteMessages}; client and server
#: agree on it, so it lives beside the namespace they share.
MAX_DELETE_IDS = 100


# -- storage service (roaming profile, display picture) ----------------------------

#: The namespace WLM 2009 used (Escargot answers in it when asked in it).
STORAGE_NS = "http://www.msn.com/webservices/storage/w10"
#: The namespace of C{detail/errorcode} in storage faults.
STORAGE_FAULT_NS = "http://www.msn.com/webservices/storage/v1"
#: The fault error code of a profile or document that does not exist.
ITEM_DOES_NOT_EXIST = "ItemDoesNotExist"
#: The fault error code of a storage ticket past its lifetime.
TICKET_EXPIRED = "TicketExpired"
#: The document stream type of the display picture.
USER_TILE_STATIC = "UserTileStatic"
