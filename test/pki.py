"""
A throw-away certificate authority for the tests that need real TLS: made
at test time with C{cryptography}, once per process, never written outside
a test's temporary directory.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from typing import Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


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
