"""The ministry's small PKI: two CAs, the servers' certificates, operators' and centres' keys.

Flower 1.42 uses TLS on the server side only (the SuperLink and the reverse proxy show a
certificate signed by the federation's CA; SuperNodes check it) and authenticates
SuperNodes with an EC key pair in OpenSSH format: the private key stays at the centre,
the public key is registered with the SuperLink (see :mod:`server.deployment.enrolment`). Operators
are authenticated by nginx with a client certificate signed by a separate operator CA
(``ssl_verify_client``), presented by :mod:`server.deployment.operator_tunnel` for the ``flwr`` CLI.

Layout of a PKI folder (private keys are written with mode 0600 from their first byte,
atomically, and never overwritten unless asked; the two CA keys stay on the ministry's
administration machine, never in a container)::

    ca.crt  ca.key                      # the federation's CA (centres trust it)
    superlink.crt  superlink.key        # the SuperLink's own certificate and key
    proxy.crt  proxy.key                # the reverse proxy's own certificate and key
    operator-ca.crt  operator-ca.key    # signs operators' client certificates only
    operator-ca.crl                     # the operator certificates it revoked (nginx
                                        # refuses them; `pki revoke-operator`)
    operators/<name>/<name>.crt .key    # an operator's client certificate and key
    centres/<name>/<name>.key           # a centre's private key (OpenSSH, ECDSA P-384)
    centres/<name>/<name>.pub           # its public key (OpenSSH), sent to the ministry
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from common.errors import ExitCode, PerseveranceError
from common.i18n.catalogue import N_, word
from server.deployment import keyfiles
from server.deployment.certificates import (
    CURVE,
    CertificateError,
    build_crl,
    certificate_names,
    generate_ca,
    is_signed_by,
    issue_client_certificate,
    issue_server_certificate,
)

#: Names the servers' certificates always cover: loopback for the launcher and the
#: tests, and the compose service name of each (see ``deploy/ministry``).
SUPERLINK_NAMES: tuple[str, ...] = ("superlink", "localhost", "127.0.0.1")
PROXY_NAMES: tuple[str, ...] = ("proxy", "localhost", "127.0.0.1")
_CURVE = CURVE
#: The certificate helpers live in :mod:`server.deployment.certificates`; callers use
#: them from here.
__all__ = [
    "PkiError",
    "PkiPaths",
    "add_centre",
    "add_operator",
    "certificate_names",
    "check_centre_name",
    "fingerprint",
    "generate_ca",
    "generate_centre_key",
    "init_pki",
    "is_signed_by",
    "issue_client_certificate",
    "issue_server_certificate",
    "key_pair_matches",
    "load_ca",
    "load_operator_ca",
    "load_public_key",
    "private_key_to_openssh",
    "public_key_to_openssh",
    "renew_server",
    "revoke_operator",
    "write_operator_crl",
    "write_public",
    "write_secret",
]
_CENTRE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class PkiError(PerseveranceError):
    exit_code = ExitCode.PKI
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
    def superlink_certificate(self) -> Path:
        """The SuperLink's certificate (PEM), signed by the federation's CA."""
        return self.root / "superlink.crt"

    @property
    def superlink_key(self) -> Path:
        """The SuperLink's private key (PEM); mounted into the SuperLink only."""
        return self.root / "superlink.key"

    @property
    def proxy_certificate(self) -> Path:
        """The reverse proxy's certificate (PEM), shown on both listeners."""
        return self.root / "proxy.crt"

    @property
    def proxy_key(self) -> Path:
        """The reverse proxy's private key (PEM); mounted into the proxy only."""
        return self.root / "proxy.key"

    @property
    def operator_ca_certificate(self) -> Path:
        """The operator CA's certificate: nginx accepts client certificates it signed."""
        return self.root / "operator-ca.crt"

    @property
    def operator_ca_key(self) -> Path:
        """The operator CA's private key (PEM); keep offline in production."""
        return self.root / "operator-ca.key"

    @property
    def operator_crl(self) -> Path:
        """The operator CA's revocation list (PEM): nginx refuses the certificates it lists."""
        return self.root / "operator-ca.crl"

    def operator_certificate(self, name: str) -> Path:
        """An operator's client certificate (PEM)."""
        return self.root / "operators" / name / f"{name}.crt"

    def operator_key(self, name: str) -> Path:
        """An operator's private key (PEM), on the operator's machine only."""
        return self.root / "operators" / name / f"{name}.key"

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
        raise PkiError(N_(
            "Centre name %(name)r is not valid: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or a digit.", name=name))
    return name


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
        raise PkiError(N_("The public key is not an OpenSSH public key (%(reason)s).",
                          reason=str(err))) from err
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise PkiError(N_("The public key is not an EC key: SuperNode keys must be ECDSA."))
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
    """Write a private key: mode 0600 from its first byte, atomically (see
    :mod:`server.deployment.keyfiles`). Raises :class:`PkiError` if it exists and ``overwrite`` is
    false."""
    try:
        keyfiles.write_private(path, data, overwrite=overwrite)
    except keyfiles.KeyFileExistsError as err:
        raise PkiError(N_("%(path)s exists already; pass --force to replace it.",
                          path=path)) from err


def write_public(path: Path, data: bytes) -> None:
    """Write a certificate or public key (mode 0644), atomically."""
    keyfiles.write_public(path, data)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_ca(certificate: Path, key_path: Path, what: str) -> tuple[
    ec.EllipticCurvePrivateKey, x509.Certificate
]:
    if not (key_path.is_file() and certificate.is_file()):
        raise PkiError(N_("No %(what)s key in %(folder)s (%(file)s); run `perseverance-server "
                          "pki init` where the CA keys are kept.", what=what,
                          folder=key_path.parent, file=key_path.name))
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(N_("%(path)s is not an EC private key.", path=key_path))
    return key, x509.load_pem_x509_certificate(certificate.read_bytes())


def load_ca(paths: PkiPaths) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Read the federation's CA of a PKI folder, or raise :class:`PkiError`."""
    return _load_ca(paths.ca_certificate, paths.ca_key, word(N_("CA")))


def load_operator_ca(paths: PkiPaths) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Read the operator CA of a PKI folder, or raise :class:`PkiError`."""
    return _load_ca(paths.operator_ca_certificate, paths.operator_ca_key,
                    word(N_("operator CA")))


def _new_ca(certificate: Path, key_path: Path, common_name: str, *, force: bool) -> None:
    if not force and certificate.exists() and not key_path.exists():
        raise PkiError(N_(
            "%(certificate)s exists but its key %(key)s is not here (kept offline?); put "
            "the key back, or pass --force to create a new CA.", certificate=certificate,
            key=key_path))
    key, cert = generate_ca(common_name)
    write_secret(key_path, _key_pem(key), overwrite=force)
    write_public(certificate, _pem(cert))


def _server_pair(paths: PkiPaths, which: str) -> tuple[Path, Path]:
    if which == "superlink":
        return paths.superlink_certificate, paths.superlink_key
    return paths.proxy_certificate, paths.proxy_key


def _issue_server(paths: PkiPaths, which: str, names: list[str]) -> None:
    """Issue a new key pair and certificate for ``which`` (``superlink`` or ``proxy``);
    the key is written first, so a crash in between leaves a pair that fails loudly."""
    ca_key, ca_cert = load_ca(paths)
    certificate, key_path = _server_pair(paths, which)
    try:
        key, cert = issue_server_certificate(ca_key, ca_cert, names)
    except CertificateError as err:
        raise PkiError(*err.args) from err  # its sentence, still translatable
    write_secret(key_path, _key_pem(key), overwrite=True)
    write_public(certificate, _pem(cert))


def _names(which: str, extra: list[str] | None) -> list[str]:
    base = SUPERLINK_NAMES if which == "superlink" else PROXY_NAMES
    return list(dict.fromkeys([*base, *(extra or [])]))


def init_pki(root: Path, extra_names: list[str] | None = None, *, force: bool = False) -> PkiPaths:
    """Create the two CAs and the SuperLink's and proxy's certificates in ``root``.

    Existing material is kept: with ``force`` false, existing CAs are reused and an
    existing server certificate is kept if it already covers every requested name.

    Parameters
    ----------
    root : Path
        The PKI folder (created if needed).
    extra_names : list[str] | None
        DNS names or IP addresses the proxy's certificate must cover on top of
        ``PROXY_NAMES`` (e.g. the public name of the ministry's proxy).
    force : bool
        Replace both CAs and the servers' keys and certificates.

    Returns
    -------
    PkiPaths
        The paths of the PKI folder.
    """
    paths = PkiPaths(root)
    if force or not paths.ca_key.exists():
        _new_ca(paths.ca_certificate, paths.ca_key, "Perseverance federation CA", force=force)
        force = True  # a new CA invalidates the old server certificates
    if force or not paths.operator_ca_certificate.exists():
        _new_ca(paths.operator_ca_certificate, paths.operator_ca_key,
                "Perseverance operator CA", force=True)
        write_operator_crl(paths, {})  # a new CA revoked nothing yet
    elif not paths.operator_crl.exists():
        write_operator_crl(paths, {})  # a folder made before CRLs existed
    _, ca_cert = load_ca(paths)
    for which, extra in (("superlink", None), ("proxy", extra_names)):
        certificate, key_path = _server_pair(paths, which)
        names = _names(which, extra)
        if not force and certificate.exists() and key_path.exists():
            current = x509.load_pem_x509_certificate(certificate.read_bytes())
            if set(names) <= set(certificate_names(current)) and is_signed_by(current, ca_cert):
                continue
            raise PkiError(N_(
                "%(certificate)s does not cover %(names)s or is not signed by this CA; pass "
                "--force to issue a new one, or run `pki renew-server --name ...`.",
                certificate=certificate, names=sorted(set(names))))
        _issue_server(paths, which, names)
    return paths


def renew_server(root: Path, extra_names: list[str] | None = None) -> PkiPaths:
    """Issue new key pairs and certificates for the SuperLink and the proxy.

    The proxy's certificate keeps the names of the one it replaces, plus
    ``extra_names``. The running programs read their keys at start: restart the
    SuperLink and reload nginx afterwards.
    """
    paths = PkiPaths(root)
    load_ca(paths)  # fail before touching anything if the CA key is not here
    proxy_names = list(extra_names or [])
    if paths.proxy_certificate.is_file():
        current = x509.load_pem_x509_certificate(paths.proxy_certificate.read_bytes())
        proxy_names = [*certificate_names(current), *proxy_names]
    _issue_server(paths, "superlink", _names("superlink", None))
    _issue_server(paths, "proxy", _names("proxy", proxy_names))
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


def add_operator(root: Path, name: str, *, force: bool = False,
                 read_only: bool = False) -> PkiPaths:
    """Issue an operator's client certificate and key in ``root/operators/<name>/``.

    The certificate is signed by the operator CA: nginx's operator listener accepts it;
    a ``read_only`` one may only list the SuperLink's nodes and runs (the console's).
    An existing key is never replaced unless ``force`` is true; raises :class:`PkiError`.
    """
    check_centre_name(name)  # same rule: it is a file name and a certificate's name
    paths = PkiPaths(root)
    ca_key, ca_cert = load_operator_ca(paths)
    key, cert = issue_client_certificate(ca_key, ca_cert, name, read_only=read_only)
    write_secret(paths.operator_key(name), _key_pem(key), overwrite=force)
    write_public(paths.operator_certificate(name), _pem(cert))
    return paths


def read_operator_crl(paths: PkiPaths) -> tuple[dict[int, dt.datetime], int]:
    """The serials the operator CA revoked (serial -> when) and the CRL's number; none
    and 0 when there is no CRL yet."""
    if not paths.operator_crl.is_file():
        return {}, 0
    try:
        crl = x509.load_pem_x509_crl(paths.operator_crl.read_bytes())
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except (ValueError, x509.ExtensionNotFound) as err:
        raise PkiError(N_("%(path)s is not a revocation list of this PKI (%(reason)s).",
                          path=paths.operator_crl, reason=str(err))) from err
    return {entry.serial_number: entry.revocation_date_utc for entry in crl}, number


def write_operator_crl(paths: PkiPaths, revoked: dict[int, dt.datetime]) -> Path:
    """Sign and write the operator CA's CRL listing ``revoked`` (the CA key is needed:
    an offline step); the next CRL number follows the current one."""
    ca_key, ca_cert = load_operator_ca(paths)
    _, number = read_operator_crl(paths) if paths.operator_crl.is_file() else ({}, 0)
    crl = build_crl(ca_key, ca_cert, revoked, number + 1)
    write_public(paths.operator_crl, crl.public_bytes(serialization.Encoding.PEM))
    return paths.operator_crl


def revoke_operator(root: Path, name: str) -> tuple[int, bool]:
    """Add the certificate ``operators/<name>/<name>.crt`` to the operator CA's CRL.

    Returns its serial number and whether it was revoked now (false: it was already).
    nginx reads the CRL when it starts or reloads: reload the proxy afterwards.
    Raises :class:`PkiError` when the operator CA key is not here (revoking is done
    where the CA keys are kept), or the certificate is missing or not the CA's.
    """
    check_centre_name(name)
    paths = PkiPaths(root)
    _, ca_cert = load_operator_ca(paths)  # before anything else: the key must be here
    certificate = paths.operator_certificate(name)
    if not certificate.is_file():
        raise PkiError(N_("No certificate of the operator %(name)s in %(path)s; give the "
                          "name it was issued under (`pki add-operator`).", name=name,
                          path=certificate.parent.parent))
    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    if not is_signed_by(cert, ca_cert):
        raise PkiError(N_("%(path)s was not signed by this PKI's operator CA.",
                          path=certificate))
    revoked, _ = read_operator_crl(paths)
    if cert.serial_number in revoked:
        return cert.serial_number, False
    revoked[cert.serial_number] = dt.datetime.now(dt.UTC)
    write_operator_crl(paths, revoked)
    return cert.serial_number, True
