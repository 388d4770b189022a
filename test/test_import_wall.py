"""
The wall between the client library and the local network, checked from
the source (every C{import} statement, also those inside functions).

C{msnp/server/} may use only the modules both sides of the wire share;
the client never imports C{msnp.server}. See C{docs/architecture.md}.
"""

from __future__ import annotations

import ast
import os

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "msnp")

#: What the local network may import from the client package: the codec,
#: the list payloads, the MBI crypto, the challenge, XML safety, the error
#: family, the framing base, the SOAP/Passport names, the reactor default,
#: the endpoint addresses it hands out, the contact model's list flags and
#: address normalisation (which the list payloads are written in), and the
#: pure payload codecs below. None of them opens a connection or imports
#: a client service.
SHARED = frozenset(
    {
        "msnp",
        "msnp.wire",
        "msnp.listpayload",
        "msnp.mbi",
        "msnp.challenge",
        "msnp.xmlsafe",
        "msnp.errors",
        "msnp.protocol",
        "msnp.namespaces",
        "msnp.reactors",
        "msnp.endpoints",
        "msnp.contacts",
        # Pure codecs of payloads both ends write and read: message
        # formats, capabilities, offline messages (OIM and UUM), circles.
        "msnp.mime",
        "msnp.capabilities",
        "msnp.oim",
        "msnp.uum",
        "msnp.circles",
        "msnp.circlewire",
        # The MSN object value (a text message names its custom emoticons
        # with it; msnp.mime refers to it for typing only).
        "msnp.p2p.msnobject",
        # The twistd option helpers both plugins use.
        "msnp.twistdsupport",
    }
)

#: The client-side modules that may import the local network: the demo
#: (it runs one), and L{msnp.testing}, whose purpose is testing against one.
MAY_IMPORT_SERVER = frozenset({"msnp.__main__", "msnp.demo", "msnp.testing"})


def _modules() -> dict[str, str]:
    found = {}
    for directory, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                relative = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
                found[relative.removesuffix(".__init__")] = path
    return found


def _imports(path: str) -> set[str]:
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n == "msnp" or n.startswith("msnp.")}


class ImportWallTests(SynchronousTestCase):
    """
    Who may import whom inside C{msnp}.
    """

    def setUp(self) -> None:
        self.modules = _modules()

    def test_serverImportsOnlySharedModules(self) -> None:
        """
        Every module of C{msnp.server} imports only C{msnp.server} itself
        and the shared modules.
        """
        wrong = {
            (module, imported)
            for module, path in self.modules.items()
            if module.startswith("msnp.server")
            for imported in _imports(path)
            if not imported.startswith("msnp.server") and imported not in SHARED
        }
        self.assertEqual(wrong, set())

    def test_sharedModulesStayShared(self) -> None:
        """
        The shared modules import nothing but each other, so the server
        never loads client code through them.
        """
        wrong = {
            (module, imported)
            for module in SHARED - {"msnp"}
            for imported in _imports(self.modules[module])
            if imported not in SHARED
        }
        self.assertEqual(wrong, set())

    def test_clientNeverImportsServer(self) -> None:
        """
        Nothing outside C{msnp.server} imports it, except the demo and
        C{msnp.testing}.
        """
        wrong = {
            (module, imported)
            for module, path in self.modules.items()
            if not module.startswith("msnp.server") and module not in MAY_IMPORT_SERVER
            for imported in _imports(path)
            if imported.startswith("msnp.server")
        }
        self.assertEqual(wrong, set())

    def test_theCheckSeesImports(self) -> None:
        """
        The check itself finds imports, so the tests above cannot pass by
        seeing none: L{msnp.testing} does import the local network.
        """
        self.assertIn("msnp.client", _imports(self.modules["msnp.testing"]))
        self.assertTrue(any(i.startswith("msnp.server") for i in _imports(self.modules["msnp.testing"])))
