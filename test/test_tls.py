"""
Tests for L{msnp.httpclient}: the SSO and ABCH clients over real, verified https.

A test certificate authority and server certificates are made at test time
with C{cryptography}; the local STS and ABCH resources are served by a real
C{twisted.web} HTTPS listener on 127.0.0.1, and the library's own
L{SSOClient}, L{SharingService} and L{AddressBookService} talk to it through
L{makeHTTPClient}. Every test closes its client and its listener and waits
until every connection is gone, so the reactor stays clean.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IOpenSSLContextFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import ResponseNeverReceived
from twisted.web.server import Site

from msnp.errors import ServiceError
from msnp.http import postXML
from msnp.server.abch import ABCHResource
from msnp.server.accounts import AccountStore
from msnp.server.sso import SSOResource
from msnp.soap.addressbook import AddressBookService
from msnp.soap.sharing import SharingService
from msnp.namespaces import MBI_KEY_OLD
from msnp.sso import SSOClient
from msnp.httpclient import (
    HTTPClientHandle,
    TLSVerificationError,
    loadTrustRoot,
    makeHTTPClient,
    verificationFailure,
)
from zope.interface import implementer

from test.support import TrackingFactory, stopTracked, writeTempFile

ACCOUNT = "alice@example.com"
PASSWORD = "tls-test-pw"
#: Deadline of one HTTP exchange in these tests; loopback answers in ms.
TIMEOUT = 10.0


# -- certificates ---------------------------------------------------------------


@dataclass
class Issued:
    """
    A certificate with its key, as PEM.
    """

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def certPEM(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def keyPEM(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(
        now + datetime.timedelta(days=30)
    )


def makeCA(common: str) -> Issued:
    """
    A self-signed certificate authority.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _validity(x509.CertificateBuilder())
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return Issued(builder.sign(key, hashes.SHA256()), key)


def makeServerCert(ca: Issued, dnsNames: list[str], ipAddresses: list[str]) -> Issued:
    """
    A server certificate issued by C{ca} for the given names.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dnsNames]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ipAddresses]
    builder = (
        _validity(x509.CertificateBuilder())
        .subject_name(_name(dnsNames[0] if dnsNames else ipAddresses[0]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


@dataclass
class PKI:
    """
    Everything the tests need, generated once per test run.
    """

    ca: Issued
    unknownCA: Issued
    good: Issued
    unknown: Issued
    wrongHost: Issued


_pki: Optional[PKI] = None


def pki() -> PKI:
    global _pki
    if _pki is None:
        ca = makeCA("msnp test CA")
        unknownCA = makeCA("msnp unknown CA")
        _pki = PKI(
            ca=ca,
            unknownCA=unknownCA,
            good=makeServerCert(ca, ["localhost"], ["127.0.0.1"]),
            unknown=makeServerCert(unknownCA, ["localhost"], ["127.0.0.1"]),
            wrongHost=makeServerCert(ca, ["wrong.example.com"], ["192.0.2.1"]),
        )
    return _pki


# -- the server -------------------------------------------------------------------


class _CountingSite(Site):
    """
    A site that counts the requests it served.
    """

    requests = 0

    def getResourceFor(self, request: Any) -> Any:
        self.requests += 1
        return super().getResourceFor(request)


@implementer(IOpenSSLContextFactory)
class ServerContext:
    """
    The server side's TLS context, built from C{cryptography} objects
    directly (C{CertificateOptions} would hand pyOpenSSL deprecated types).
    """

    def __init__(self, issued: Issued) -> None:
        self._context = SSL.Context(SSL.TLS_METHOD)
        self._context.set_min_proto_version(SSL.TLS1_2_VERSION)
        self._context.use_certificate(issued.certificate)
        self._context.use_privatekey(issued.key)

    def getContext(self) -> SSL.Context:
        return self._context


class Services:
    """
    The local STS and ABCH services on a real listener (https or http).
    """

    def __init__(self, testCase: TestCase, issued: Optional[Issued]) -> None:
        self.store = AccountStore()
        self.store.addAccount(ACCOUNT, PASSWORD, "Alice")
        self.store.addAccount("bob@example.com", "bob-pw", "Bob")
        self.store.addContact(ACCOUNT, "bob@example.com", mutual=True)
        root = SSOResource(self.store, clock=reactor)
        root.putChild(b"abservice", ABCHResource(self.store, clock=reactor))
        site = _CountingSite(root)
        site.displayTracebacks = False
        self.site = site
        self.factory = TrackingFactory(site)
        listener: Any = reactor
        if issued is not None:
            self.port = listener.listenSSL(0, self.factory, ServerContext(issued), interface="127.0.0.1")
            scheme = "https"
        else:
            self.port = listener.listenTCP(0, self.factory, interface="127.0.0.1")
            scheme = "http"
        self.base = f"{scheme}://127.0.0.1:{self.port.getHost().port}"
        testCase.addCleanup(self.stop)

    def stop(self) -> "Deferred[Any]":
        return stopTracked(self.port, self.factory)

    @property
    def sso(self) -> str:
        return self.base + "/RST2.srf"

    @property
    def sharing(self) -> str:
        return self.base + "/abservice/SharingService.asmx"

    @property
    def addressBook(self) -> str:
        return self.base + "/abservice/abservice.asmx"


# -- tests ----------------------------------------------------------------------------


class TrustRootTests(SynchronousTestCase):
    """
    Reading the C{trustRoot} PEM file.
    """

    def test_missingFile(self) -> None:
        """
        A trust root that does not exist is a L{ValueError} naming the file,
        at construction, not a failure at the first request.
        """
        path = os.path.join(tempfile.gettempdir(), "msnp-no-such-dir", "absent.pem")
        error = self.assertRaises(ValueError, makeHTTPClient, reactor, trustRoot=path)
        self.assertIn("absent.pem", str(error))
        self.assertIn("cannot read", str(error))

    def test_noCertificate(self) -> None:
        """
        A file without any PEM certificate is refused.
        """
        path = writeTempFile(self, b"this is not a certificate\n", "roots.pem")
        error = self.assertRaises(ValueError, makeHTTPClient, reactor, trustRoot=path)
        self.assertIn("no PEM certificate", str(error))

    def test_corruptCertificate(self) -> None:
        """
        A PEM block whose contents are not a certificate is refused, saying
        which one.
        """
        good = pki().ca.certPEM
        path = writeTempFile(self, good + b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "roots.pem")
        error = self.assertRaises(ValueError, makeHTTPClient, reactor, trustRoot=path)
        self.assertIn("certificate 2", str(error))
        self.assertIn("invalid", str(error))

    def test_unterminated(self) -> None:
        """
        A truncated PEM file is refused.
        """
        path = writeTempFile(self, pki().ca.certPEM[:-30], "roots.pem")
        self.assertRaises(ValueError, makeHTTPClient, reactor, trustRoot=path)

    def test_privateKeyOnly(self) -> None:
        """
        A key file given by mistake (no certificate in it) is refused.
        """
        path = writeTempFile(self, pki().good.keyPEM, "roots.pem")
        self.assertRaises(ValueError, loadTrustRoot, path)

    def test_severalCertificates(self) -> None:
        """
        A bundle of several CAs loads, and the handle remembers its path.
        """
        path = writeTempFile(self, pki().ca.certPEM + b"\n" + pki().unknownCA.certPEM, "roots.pem")
        handle = makeHTTPClient(reactor, trustRoot=path)
        self.assertIsInstance(handle, HTTPClientHandle)
        self.assertEqual(handle.trustRoot, path)
        self.assertEqual(len(loadTrustRoot(path)._caCerts), 2)  # type: ignore[attr-defined]


class VerifiedHTTPSTests(TestCase):
    """
    The SSO and ABCH clients against a real HTTPS listener on 127.0.0.1.
    """

    def setUp(self) -> None:
        self.caPath = writeTempFile(self, pki().ca.certPEM, "ca.pem")

    def client(self, trustRoot: Optional[str], persistent: bool = True) -> HTTPClientHandle:
        handle = makeHTTPClient(reactor, trustRoot=trustRoot, persistent=persistent)
        self.addCleanup(handle.close)
        return handle

    def signIn(self, handle: HTTPClientHandle, services: Services) -> "Deferred[Any]":
        return SSOClient(handle.client, services.sso, reactor, timeout=TIMEOUT).requestTokens(
            ACCOUNT, PASSWORD, MBI_KEY_OLD
        )

    def assertVerificationFailure(self, d: "Deferred[Any]", *words: str) -> "Deferred[Any]":
        def check(error: TLSVerificationError) -> None:
            message = str(error)
            self.assertIn("certificate verification", message)
            self.assertIn("127.0.0.1", message)
            for word in words:
                self.assertIn(word, message)

        return self.assertFailure(d, TLSVerificationError).addCallback(check)

    async def _signInAndDownload(self, handle: HTTPClientHandle, services: Services) -> None:
        tokens = await self.signIn(handle, services)
        grant = self.store_grant(services, tokens.messengerTicket)
        self.assertEqual(tokens.messengerSecret, grant.binarySecret)
        ticket = tokens.contactsTicket
        sharing = SharingService(handle.client, services.sharing, lambda: ticket, reactor, timeout=TIMEOUT)
        book = AddressBookService(handle.client, services.addressBook, lambda: ticket, reactor, timeout=TIMEOUT)
        membership = await sharing.findMembership()
        addressBook = await book.findContactsPaged()
        self.assertIn("bob@example.com", membership.emails("Allow"))
        self.assertEqual([c.email for c in addressBook.contacts], ["bob@example.com"])

    def store_grant(self, services: Services, ticket: str) -> Any:
        grant = services.store.grantForTicket(ticket)
        self.assertIsNotNone(grant)
        return grant

    def test_verifiedSignInAndAddressBook(self) -> "Deferred[Any]":
        """
        With the test CA as trust root, a certificate for 127.0.0.1 issued
        by it verifies: the tokens arrive, and the memberships and address
        book download over the same (persistent) client.
        """
        services = Services(self, pki().good)
        handle = self.client(self.caPath)
        from twisted.internet.defer import ensureDeferred

        return ensureDeferred(self._signInAndDownload(handle, services))

    def test_verifiedNonPersistent(self) -> "Deferred[Any]":
        """
        The non-persistent default works as well, and closing it leaves no
        connection behind.
        """
        services = Services(self, pki().good)
        handle = self.client(self.caPath, persistent=False)
        d = self.signIn(handle, services)
        d.addCallback(lambda tokens: self.assertTrue(tokens.contactsTicket))
        d.addCallback(lambda _: handle.close())
        return d

    def test_bundleWithSeveralRoots(self) -> "Deferred[Any]":
        """
        Every CA of a bundle is trusted: a server certified by the second
        one verifies.
        """
        path = writeTempFile(self, pki().unknownCA.certPEM + pki().ca.certPEM, "bundle.pem")
        services = Services(self, pki().good)
        d = self.signIn(self.client(path), services)
        d.addCallback(lambda tokens: self.assertTrue(tokens.messengerTicket))
        return d

    def test_unknownAuthority(self) -> "Deferred[Any]":
        """
        A certificate from a CA that is not the trust root fails the SSO
        request with a L{ServiceError} saying that certificate verification
        failed; no token request reaches the server.
        """
        services = Services(self, pki().unknown)
        d = self.assertVerificationFailure(self.signIn(self.client(self.caPath), services))
        d.addCallback(lambda _: self.assertEqual(services.site.requests, 0))
        return d

    def test_unknownAuthorityABCH(self) -> "Deferred[Any]":
        """
        The ABCH clients fail the same way, as a L{ServiceError}.
        """
        services = Services(self, pki().unknown)
        ticket = "t=whatever&p=x"
        sharing = SharingService(
            self.client(self.caPath).client, services.sharing, lambda: ticket, reactor, timeout=TIMEOUT
        )
        d = self.assertFailure(sharing.findMembership(), ServiceError)
        d.addCallback(lambda e: self.assertIn("certificate verification", str(e)))
        return d

    def test_wrongHostName(self) -> "Deferred[Any]":
        """
        A certificate issued by the trusted CA for another host name is
        refused, with a message saying the name does not match.
        """
        services = Services(self, pki().wrongHost)
        return self.assertVerificationFailure(
            self.signIn(self.client(self.caPath), services), "host name"
        )

    def test_wrongHostNameAddressBook(self) -> "Deferred[Any]":
        """
        The address-book client refuses the wrong host name too.
        """
        services = Services(self, pki().wrongHost)
        ticket = "t=whatever&p=x"
        book = AddressBookService(
            self.client(self.caPath).client, services.addressBook, lambda: ticket, reactor, timeout=TIMEOUT
        )
        return self.assertVerificationFailure(book.findContactsPaged())

    def test_platformTrustDoesNotKnowTestCA(self) -> "Deferred[Any]":
        """
        Without a trust root the platform store is used, and it does not
        know the test CA: verification fails (there is no way to skip it).
        """
        services = Services(self, pki().good)
        return self.assertVerificationFailure(self.signIn(self.client(None), services))

    def test_plainHTTP(self) -> "Deferred[Any]":
        """
        Plain http (the local network's default) still works through the
        same client.
        """
        services = Services(self, None)
        d = self.signIn(self.client(self.caPath), services)
        d.addCallback(lambda tokens: self.assertTrue(tokens.messengerTicket))
        return d

    def test_otherTransportErrorsAreNotCalledTLS(self) -> "Deferred[Any]":
        """
        A refused connection is a plain L{ServiceError}, not a certificate
        problem.
        """
        services = Services(self, pki().good)
        url = services.sso
        d = services.stop()

        def post(_: Any) -> "Deferred[Any]":
            handle = self.client(self.caPath)
            return self.assertFailure(
                postXML(handle.client, url, b"<x/>", {}, reactor, TIMEOUT), ServiceError
            )

        def check(error: ServiceError) -> None:
            self.assertNotIsInstance(error, TLSVerificationError)
            self.assertNotIn("certificate", str(error))

        return d.addCallback(post).addCallback(check)

    def test_closeWaitsForEveryConnection(self) -> "Deferred[Any]":
        """
        C{close()} returns a L{Deferred} that fires only once every
        connection the client opened is closed, the cached one included.
        """
        services = Services(self, pki().good)
        handle = self.client(self.caPath)
        d = self.signIn(handle, services)
        opened: list[Any] = []

        def close(_: Any) -> "Deferred[None]":
            opened.extend(handle._connections)
            self.assertEqual([p.state for p in opened], ["QUIESCENT"])
            return handle.close()

        def check(_: Any) -> None:
            self.assertEqual([p.state for p in opened], ["CONNECTION_LOST"])

        return d.addCallback(close).addCallback(check)


class ExplainTests(SynchronousTestCase):
    """
    Turning the web client's nested failures into messages.
    """

    def test_sslError(self) -> None:
        """
        An OpenSSL verification error nested in C{ResponseNeverReceived}
        becomes a L{TLSVerificationError} naming the host and the reason.
        """
        nested = SSL.Error([("SSL routines", "", "certificate verify failed")])
        error = verificationFailure(ResponseNeverReceived([Failure(nested)]), "example.com:443")
        assert error is not None
        self.assertIsInstance(error, ServiceError)
        self.assertIn("certificate verification failed for example.com:443", str(error))
        self.assertIn("certificate verify failed", str(error))

    def test_otherHandshakeError(self) -> None:
        """
        A handshake failure that is not about the certificate is still a
        L{TLSVerificationError}, saying verification never completed.
        """
        nested = SSL.Error([("SSL routines", "", "wrong version number")])
        error = verificationFailure(ResponseNeverReceived([Failure(nested)]), "h:1")
        assert error is not None
        self.assertIn("TLS handshake with h:1 failed", str(error))
        self.assertIn("wrong version number", str(error))

    def test_notTLS(self) -> None:
        """
        Anything else is left alone.
        """
        self.assertIsNone(verificationFailure(ResponseNeverReceived([Failure(ConnectionDone())]), "h:1"))
        self.assertIsNone(verificationFailure(ValueError("x"), "h:1"))
