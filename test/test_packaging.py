"""
The package's metadata says what is true: the licence, the version, the
minimum versions CI checks.
"""

from __future__ import annotations

import configparser
import os
import re

from twisted.trial.unittest import SynchronousTestCase

import msnp

from test.support import ROOT


def _config() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))
    return config


class PackagingTests(SynchronousTestCase):
    def test_license(self) -> None:
        """
        The metadata says MIT and the LICENSE file is the MIT licence.
        """
        self.assertEqual(_config()["metadata"]["license"], "MIT")
        with open(os.path.join(ROOT, "LICENSE")) as f:
            self.assertTrue(f.read().startswith("MIT License"))

    def test_singleVersion(self) -> None:
        """
        setup.cfg takes the version from C{msnp.__version__}, and the
        changelog has an entry for it.
        """
        self.assertEqual(_config()["metadata"]["version"], "attr: msnp.__version__")
        self.assertRegex(msnp.__version__, r"^\d+\.\d+\.\d+$")
        with open(os.path.join(ROOT, "CHANGELOG.rst")) as f:
            self.assertIn(f"\n{msnp.__version__} (", f.read())

    def test_floorsMatch(self) -> None:
        """
        The minimum versions declared are the ones C{.ci/floors} installs.
        """
        declared = {}
        for requirement in _config()["options"]["install_requires"].split("\n"):
            if requirement.strip():
                name, floor = re.split(r"(?:\[\w+\])?>=", requirement.strip())
                declared[name] = floor
        pinned = {}
        with open(os.path.join(ROOT, ".ci", "floors.txt")) as f:
            for line in f:
                if line.strip() and not line.startswith("#"):
                    name, version = re.split(r"(?:\[\w+\])?==", line.strip())
                    pinned[name] = version
        self.assertEqual(sorted(declared), sorted(pinned))
        for name, floor in declared.items():
            parts = floor.split(".")
            self.assertEqual(pinned[name].split(".")[: len(parts)], parts, name)

    def test_pythonVersions(self) -> None:
        """
        Every Python the classifiers name is at least C{python_requires}.
        """
        config = _config()
        minimum = config["options"]["python_requires"].strip()
        self.assertEqual(minimum, ">=3.10")
        versions = re.findall(r"Python :: (3\.\d+)", config["metadata"]["classifiers"])
        self.assertEqual(versions, ["3.10", "3.11", "3.12", "3.13"])
