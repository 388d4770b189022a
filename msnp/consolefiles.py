# -*- test-case-name: test.test_filetransfer_e2e -*-
"""
The console's file commands (C{/send}, C{/accept}, C{/decline}) and the
file events it shows, with a progress bar: a mixin of
L{msnp.console.Console}, kept apart so the console module stays about
commands in general.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional

#: Width of the progress bar, in characters.
BAR_WIDTH = 20
#: A transfer's bar is shown again once it moved by this fraction.
BAR_STEP = 0.1


def progressBar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """
    A bar of C{width} characters (hashes for what is done, dots for the
    rest), the percentage and the sizes: the numbers say where a transfer
    is, the bar lets the eye see it at a glance.
    """
    fraction = done / total if total else 1.0
    filled = int(fraction * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {int(fraction * 100):3d}%  {_size(done)} of {_size(total)}"


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KB"
    return f"{count / 1024 / 1024:.1f} MB"


class FileCommands:
    """
    C{/send <email> <file>}, C{/accept [<email>] [<directory>]} for the
    pending file offers (C{/accept <email>} without an offer from them
    accepts a contact request, as before), C{/decline [<email>]}; the
    offers, progress bars and outcomes as events.

    The class using it provides C{session}, C{show}, C{event}, C{_track}
    and C{_report} (L{msnp.console.Console}).
    """

    session: Any
    show: Callable[[str], None]
    event: Callable[[str], None]
    _track: Callable[[Any], Any]
    _report: Callable[..., None]

    def _offers(self) -> list[Any]:
        offers: list[Any] = self.__dict__.setdefault("_fileOffers", [])
        offers[:] = [o for o in offers if o.pending]
        return offers

    def _bars(self) -> dict[Any, float]:
        bars: dict[Any, float] = self.__dict__.setdefault("_fileBars", {})
        return bars

    def cmd_send(self, rest: str) -> None:
        email, _, path = rest.partition(" ")
        path = os.path.expanduser(path.strip())
        if "@" not in email or not path:
            self.show("usage: /send <email> <file>")
            return
        name = os.path.basename(path)

        def offer(conversation: Any) -> Any:
            transfer = conversation.sendFile(name, path)
            self._bars()[transfer] = 0.0
            self.show(f"Offered {name} ({_size(transfer.total)}) to {email}; waiting for them to accept.")
            return transfer.whenDone()

        d = self._track(self.session.openConversation(email).addCallback(offer))
        self._report(d, lambda _: f"Sent {name} to {email}.", undelivered=True)

    def fileAccept(self, rest: str) -> bool:
        """
        C{/accept} for a file offer; L{False} when there is none to answer
        (the caller then treats it as a contact request).
        """
        words = rest.split(None, 1)
        email = words[0] if words and "@" in words[0] and "/" not in words[0] else None
        directory = (words[1] if email and len(words) > 1 else "" if email else rest).strip() or os.curdir
        offer = self._pick(email)
        if offer is None:
            return False
        directory = os.path.expanduser(directory)
        self._bars()[offer.transfer] = 0.0
        d = self._track(offer.accept(directory))
        self._report(d, lambda path: f"Saved {offer.name} from {offer.sender} as {path}.")
        return True

    def cmd_decline(self, rest: str) -> None:
        email = rest.split()[0] if rest.split() else None
        offer = self._pick(email)
        if offer is None:
            self.show("No file offer to decline." if email is None else f"No file offer from {email}.")
            return
        offer.decline()
        self.show(f"Declined {offer.name} from {offer.sender}.")

    def _pick(self, email: Optional[str]) -> Any:
        offers = [o for o in self._offers() if email is None or o.sender == email.lower()]
        return offers[-1] if offers else None

    # -- events --------------------------------------------------------------------

    def fileOfferReceived(self, session: Any, conversation: Any, offer: Any) -> None:
        self._offers().append(offer)
        self.event(f"{offer.sender} offers the file {offer.name} ({_size(offer.size)}): "
                   f"/accept {offer.sender} [<directory>] or /decline {offer.sender}")

    def transferProgress(self, session: Any, transfer: Any) -> None:
        bars = self._bars()
        if transfer not in bars or not transfer.total:
            return
        fraction = transfer.bytesDone / transfer.total
        if fraction - bars[transfer] >= BAR_STEP or (fraction >= 1.0 > bars[transfer]):
            bars[transfer] = fraction
            arrow = "to" if transfer.direction.value == "send" else "from"
            self.event(f"{transfer.name} {arrow} {transfer.peer} {progressBar(transfer.bytesDone, transfer.total)}")

    def transferEnded(self, session: Any, transfer: Any) -> None:
        self._bars().pop(transfer, None)
        if transfer.error is not None and transfer.direction.value == "receive" and transfer.bytesDone:
            self.event(f"{transfer.name} from {transfer.peer} failed: {transfer.error}")
