# -*- test-case-name: test.test_fidelity_e2e -*-
"""
C{URL}: the Hotmail links a client asks the NS for (reference 4.15 and
Q.6 of the offline/roaming/circles chapter).

C{URL trid INBOX} (also C{COMPOSE address}, C{PROFILE lcid}, ...) is
answered C{URL trid <rru> <post-url> <site-id>}: the page to open after
logging in, the address of the login form and the site id (2, Hotmail).
A client without an answer waits for it (pidgin keeps asking whenever the
mail data names an inbox), so every request is answered.

The local network has no mailbox. The C{rru} is the real service's for
each kind; the login form is on the network's own HTTP site (see
L{LocalNetwork <msnp.server.network.LocalNetwork>}), which answers it
with 404: a browser shows "not found" on the local host, and no client
is pointed at a real Microsoft address with credentials derived from the
user's password.
"""

from __future__ import annotations

from urllib.parse import quote

#: Site id of Hotmail in the real service's answers.
HOTMAIL_SITE = "2"

#: The login form's path on the network's HTTP site, as on login.live.com.
LOGIN_FORM_PATH = "/ppsecure/md5auth.srf?lc=1033"

_PAGES = {
    "INBOX": "/cgi-bin/HoTMaiL",
    "FOLDERS": "/cgi-bin/folders",
    "PROFILE": "/cgi-bin/profile",
    "PERSON": "/cgi-bin/profile",
    "CHGPWD": "/cgi-bin/chgpwd",
    "MOBILE": "/cgi-bin/mobile",
}


def urlReply(arguments: tuple[str, ...], loginURL: str) -> tuple[str, str, str]:
    """
    The arguments of the answer to C{URL trid *arguments}.

    @param loginURL: the login form's address (C{post-url}).
    @return: C{(rru, post-url, site id)}; an unknown or missing kind is
        answered with the inbox, as a link is better than no answer.
    """
    kind = arguments[0].upper() if arguments else "INBOX"
    if kind == "COMPOSE":
        target = arguments[1] if len(arguments) > 1 else ""
        rru = "/cgi-bin/compose?mailto=1" + (f"&to={quote(target, safe='@')}" if target else "")
    else:
        rru = _PAGES.get(kind, _PAGES["INBOX"])
    return rru, loginURL or LOGIN_FORM_PATH, HOTMAIL_SITE
