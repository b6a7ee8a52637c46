"""X.509 certificates of the federation: the CAs, the servers' and operators' certificates.

Pure functions over ``cryptography`` (no files); :mod:`server.deployment.pki` writes the results.
"""

from __future__ import annotations

import datetime as dt
import ipaddress

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from common.errors import ExitCode, PerseveranceError
from common.i18n.catalogue import N_

CA_VALID_DAYS = 3650
SERVER_VALID_DAYS = 825
OPERATOR_VALID_DAYS = 397
CURVE = ec.SECP384R1


class CertificateError(PerseveranceError, ValueError):
    exit_code = ExitCode.PKI
    """A certificate cannot be issued as asked (message is one sentence)."""


def generate_ca(common_name: str = "Perseverance federation CA") -> tuple[
    ec.EllipticCurvePrivateKey, x509.Certificate
]:
    """Create a self-signed CA key and certificate valid for ``CA_VALID_DAYS`` days."""
    key = ec.generate_private_key(CURVE())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA384())
    )
    return key, cert


def _subject_alternative_names(names: list[str]) -> list[x509.GeneralName]:
    general: list[x509.GeneralName] = []
    for name in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    return general


def issue_server_certificate(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, names: list[str]
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Issue a TLS server certificate for ``names`` (DNS names or IP addresses)."""
    if not names:
        raise CertificateError(N_("The server certificate needs at least one name."))
    key = ec.generate_private_key(CURVE())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(_subject_alternative_names(names)), False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA384())
    )
    return key, cert


#: The organisational unit of a read-only operator certificate: the proxy lets it list
#: the SuperLink's nodes and runs, nothing else (deploy/nginx/perseverance.conf.template).
READ_ONLY_UNIT = "read-only"


def issue_client_certificate(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, name: str,
    *, read_only: bool = False,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Issue an operator's TLS client certificate (common name ``name``, client auth only;
    ``read_only``: organisational unit ``READ_ONLY_UNIT``, which the proxy lets list only)."""
    key = ec.generate_private_key(CURVE())
    now = dt.datetime.now(dt.UTC)
    subject = [x509.NameAttribute(NameOID.COMMON_NAME, name)]
    if read_only:
        subject.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, READ_ONLY_UNIT))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=OPERATOR_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA384())
    )
    return key, cert


def build_crl(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
              revoked: dict[int, dt.datetime], number: int) -> x509.CertificateRevocationList:
    """A CRL of ``ca_cert`` listing the serials ``revoked`` (serial -> revocation time),
    CRL number ``number``, valid until the CA itself expires (the CA key is kept offline:
    a CRL that expired sooner would lock every operator out until it is signed again)."""
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(max(ca_cert.not_valid_after_utc, now + dt.timedelta(days=1)))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    for serial, when in sorted(revoked.items()):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
            .build())
    return builder.sign(ca_key, hashes.SHA384())


def certificate_names(cert: x509.Certificate) -> list[str]:
    """Return the DNS names and IP addresses a certificate covers, as strings."""
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(v) for v in san.get_values_for_type(x509.DNSName)] + [
        str(v) for v in san.get_values_for_type(x509.IPAddress)
    ]


def is_signed_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    """Return whether ``cert`` carries a valid signature of the CA ``ca_cert``."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
