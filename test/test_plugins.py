"""
Tests for the C{twistd} plugin declarations.
"""

import os

from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.trial.unittest import SynchronousTestCase

from test.support import tempDirectory


class PluginDiscoveryTests(SynchronousTestCase):
    """
    Both plugins are found the way C{twistd} finds them.
    """

    def test_bothPluginsDiscovered(self) -> None:
        """
        C{getPlugins(IServiceMaker)} yields C{msnp} and C{msnp-server}, each
        naming its tap module.
        """
        found = {p.tapname: p for p in getPlugins(IServiceMaker)}
        self.assertIn("msnp", found)
        self.assertIn("msnp-server", found)
        self.assertEqual(found["msnp"].module, "msnp.tap")
        self.assertEqual(found["msnp-server"].module, "msnp.server.tap")

    def test_optionsLoad(self) -> None:
        """
        Each plugin's options class can be built and parses an empty command
        line, so C{twistd <plugin> --help} works.
        """
        found = {p.tapname: p for p in getPlugins(IServiceMaker)}
        # msnp-server creates its default database in the working directory.
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(tempDirectory(self))
        for name in ("msnp-server",):
            options = found[name].options()
            options.parseOptions([])
            options.store.close()
