from twisted.trial.unittest import TestCase
from twisted.internet import reactor
from msnp.server.network import LocalNetwork
from msnp.client import MSNClient
from msnp.endpoints import ClientIdentity

class SmokeTest(TestCase):
    async def _go(self, redirect):
        net = LocalNetwork(redirect=redirect)
        net.addAccount("alice@example.com", "pw", "Alice")
        net.addAccount("bob@example.com", "pw2", "Bob")
        net.addContact("alice@example.com", "bob@example.com", mutual=True)
        ep = await net.start()
        steps = []
        class Obs:
            def loginStep(self, s, e): steps.append(s)
        try:
            c = MSNClient("alice@example.com", "pw", ep, observer=Obs(), loginTimeout=10, requestTimeout=5, trace=True)
            s = await c.login()
            print(steps, s, list(s.contacts), s.hotmailProfile, s.places)
            await s.logout()
        finally:
            await net.stop()
    def test_redirect(self):
        from twisted.internet.defer import ensureDeferred
        return ensureDeferred(self._go(True))
    def test_noredirect(self):
        from twisted.internet.defer import ensureDeferred
        return ensureDeferred(self._go(False))
