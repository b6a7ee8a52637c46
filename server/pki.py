"""The ministry's small PKI: a CA, the server certificate and the centres' key pairs.

Flower 1.42 uses TLS on the server side only (the SuperLink and the reverse proxy show a
certificate signed by our CA; SuperNodes and the ``flwr`` CLI check it) and authenticates
SuperNodes with an EC key pair in OpenSSH format: the private key stays at the centre,
the public key is registered with the SuperLink (see :mod:`server.enrolment`).

Layout of a PKI folder (private keys are written with mode 0600 and never overwritten
unless asked)::

    ca.crt  ca.key                      # the federation's certificate authority
    server.crt  server.key              # the SuperLink's and the proxy's certificate
    centres/<name>/<name>.key           # a centre's private key (OpenSSH, ECDSA P-384)
    centres/<name>/<name>.pub           # its public key (OpenSSH), sent to the ministry
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Names the server certificate always covers: loopback for the launcher and the tests,
#: and the compose service names of the ministry side (see ``deploy/ministry``).
DEFAULT_SERVER_NAMES: tuple[str, ...] = ("localhost", "127.0.0.1", "superlink", "proxy")
CA_VALID_DAYS = 3650
SERVER_VALID_DAYS = 825
_CURVE = ec.SECP384R1
_CENTRE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class PkiError(Exception):
    """A PKI operation a user asked for cannot be done (message is one sentence)."""


@dataclass(frozen=True)
class PkiPaths:
    """Where the files of one PKI folder live."""

    root: Path

    @property
    def ca_certificate(self) -> Path:
        """The CA certificate (PEM), given to every SuperNode and operator."""
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        """The CA private key (PEM); keep offline in production."""
        return self.root / "ca.key"

    @property
    def server_certificate(self) -> Path:
        """The server certificate (PEM) of the SuperLink and the reverse proxy."""
        return self.root / "server.crt"

    @property
    def server_key(self) -> Path:
        """The server private key (PEM)."""
        return self.root / "server.key"

    def centre_private_key(self, name: str) -> Path:
        """A centre's private key (OpenSSH), used by its SuperNode only."""
        return self.root / "centres" / name / f"{name}.key"

    def centre_public_key(self, name: str) -> Path:
        """A centre's public key (OpenSSH), registered with the SuperLink."""
        return self.root / "centres" / name / f"{name}.pub"


# ---------------------------------------------------------------- pure helpers


def check_centre_name(name: str) -> str:
    """Return ``name`` if it is usable as a centre name (file and node name), else raise."""
    if not _CENTRE_NAME.match(name):
        raise PkiError(
            f"Centre name {name!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or a digit."
        )
    return name


def generate_ca(common_name: str = "Perseverance federation CA") -> tuple[
    ec.EllipticCurvePrivateKey, x509.Certificate
]:
    """Create a self-signed CA key and certificate valid for ``CA_VALID_DAYS`` days."""
    key = ec.generate_private_key(_CURVE())
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
        raise PkiError("The server certificate needs at least one name.")
    key = ec.generate_private_key(_CURVE())
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


def generate_centre_key() -> ec.EllipticCurvePrivateKey:
    """Create a centre's SuperNode key (ECDSA on NIST P-384, as Flower expects)."""
    return ec.generate_private_key(_CURVE())


def private_key_to_openssh(key: ec.EllipticCurvePrivateKey) -> bytes:
    """Serialise a centre's private key in the unencrypted OpenSSH format Flower reads."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )


def public_key_to_openssh(key: ec.EllipticCurvePublicKey, comment: str = "") -> bytes:
    """Serialise a public key as one OpenSSH line (``ecdsa-sha2-nistp384 AAAA... comment``)."""
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return line + (f" {comment}".encode() if comment else b"") + b"\n"


def load_public_key(data: bytes) -> ec.EllipticCurvePublicKey:
    """Parse an OpenSSH EC public key, or raise :class:`PkiError`."""
    try:
        key = serialization.load_ssh_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise PkiError(f"The public key is not an OpenSSH public key ({err}).") from err
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise PkiError("The public key is not an EC key: SuperNode keys must be ECDSA.")
    return key


def fingerprint(key: ec.EllipticCurvePublicKey) -> str:
    """Return the OpenSSH SHA-256 fingerprint of a public key (as ``ssh-keygen -l``)."""
    blob = base64.b64decode(public_key_to_openssh(key).split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def key_pair_matches(
    private: ec.EllipticCurvePrivateKey, public: ec.EllipticCurvePublicKey
) -> bool:
    """Return whether a signature by ``private`` verifies with ``public``."""
    probe = b"perseverance key pair check"
    signature = private.sign(probe, ec.ECDSA(hashes.SHA256()))
    try:
        public.verify(signature, probe, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


# ---------------------------------------------------------------- files


def write_secret(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write a private key readable by its owner only (mode 0600).

    Raises :class:`PkiError` if the file exists and ``overwrite`` is false.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError as err:
        raise PkiError(f"{path} exists already; pass --force to replace it.") from err
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)  # O_CREAT's mode is masked by the umask; an existing file keeps its own


def write_public(path: Path, data: bytes) -> None:
    """Write a certificate or public key (mode 0644)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, 0o644)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_ca(paths: PkiPaths) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Read the CA of a PKI folder, or raise :class:`PkiError` if it is missing."""
    if not (paths.ca_key.is_file() and paths.ca_certificate.is_file()):
        raise PkiError(f"No CA in {paths.root}; run `perseverance-server pki init` first.")
    key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{paths.ca_key} is not an EC private key.")
    return key, x509.load_pem_x509_certificate(paths.ca_certificate.read_bytes())


def init_pki(root: Path, extra_names: list[str] | None = None, *, force: bool = False) -> PkiPaths:
    """Create the CA and the server certificate in ``root``.

    Existing material is kept: with ``force`` false, an existing CA is reused and an
    existing server certificate is kept if it already covers every requested name.

    Parameters
    ----------
    root : Path
        The PKI folder (created if needed).
    extra_names : list[str] | None
        DNS names or IP addresses the server certificate must cover on top of
        ``DEFAULT_SERVER_NAMES`` (e.g. the public name of the ministry's proxy).
    force : bool
        Replace the CA and the server key and certificate.

    Returns
    -------
    PkiPaths
        The paths of the PKI folder.
    """
    paths = PkiPaths(root)
    names = list(dict.fromkeys([*DEFAULT_SERVER_NAMES, *(extra_names or [])]))
    if not force and paths.ca_certificate.exists() and not paths.ca_key.exists():
        raise PkiError(
            f"{paths.ca_certificate} exists but its key {paths.ca_key} is not here (kept "
            "offline?); put the key back, or pass --force to create a new CA."
        )
    if force or not paths.ca_key.exists():
        ca_key, ca_cert = generate_ca()
        write_secret(paths.ca_key, _key_pem(ca_key), overwrite=force)
        write_public(paths.ca_certificate, _pem(ca_cert))
        force = True  # a new CA invalidates the old server certificate
    ca_key, ca_cert = load_ca(paths)
    if not force and paths.server_certificate.exists() and paths.server_key.exists():
        current = x509.load_pem_x509_certificate(paths.server_certificate.read_bytes())
        if set(names) <= set(certificate_names(current)) and is_signed_by(current, ca_cert):
            return paths
        raise PkiError(
            f"{paths.server_certificate} does not cover {sorted(set(names))} or is not signed "
            "by this CA; pass --force to issue a new one."
        )
    server_key, server_cert = issue_server_certificate(ca_key, ca_cert, names)
    write_secret(paths.server_key, _key_pem(server_key), overwrite=True)
    write_public(paths.server_certificate, _pem(server_cert))
    return paths


def add_centre(root: Path, name: str, *, force: bool = False) -> PkiPaths:
    """Create a centre's SuperNode key pair in ``root/centres/<name>/``.

    An existing key is never replaced unless ``force`` is true; raises :class:`PkiError`.
    """
    check_centre_name(name)
    paths = PkiPaths(root)
    key = generate_centre_key()
    write_secret(paths.centre_private_key(name), private_key_to_openssh(key), overwrite=force)
    write_public(paths.centre_public_key(name), public_key_to_openssh(key.public_key(), name))
    return paths
