"""The PKI helpers: right key and wrong key, file modes, never overwriting keys."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_ssh_private_key

from server import pki

# A key line and its fingerprint as `ssh-keygen -lf` prints it (known answer).
KNOWN_PUBLIC_KEY = (
    b"ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBAPN2HYVqz28E8C6S"
    b"/zB/Rl5/Pd0cAdUgN06UwrCvBNrjBWYD2bVr9tzoKvlDAU6iPQC62kbSmh5/uqQvf0N3WkxInbSf8JB8+P3ObML7s"
    b"F64k2pi7uIjhuJ1yFAdRODrw== css-a\n"
)
KNOWN_FINGERPRINT = "SHA256:NgQB5DMRDA3x3qEWJJOFLPdemftFyawJAp+/Lqo+bWI"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_fingerprint_matches_ssh_keygen() -> None:
    assert pki.fingerprint(pki.load_public_key(KNOWN_PUBLIC_KEY)) == KNOWN_FINGERPRINT


def test_server_certificate_is_signed_by_its_ca_only() -> None:
    ca_key, ca_cert = pki.generate_ca()
    _, other_ca = pki.generate_ca("Another CA")
    _, server_cert = pki.issue_server_certificate(ca_key, ca_cert, ["proxy.example", "10.0.0.5"])

    assert pki.is_signed_by(server_cert, ca_cert)
    assert not pki.is_signed_by(server_cert, other_ca)


def test_server_certificate_covers_dns_names_and_ip_addresses() -> None:
    ca_key, ca_cert = pki.generate_ca()

    _, cert = pki.issue_server_certificate(ca_key, ca_cert, ["proxy.example", "10.0.0.5"])

    assert set(pki.certificate_names(cert)) == {"proxy.example", "10.0.0.5"}
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in usage


def test_centre_key_pair_matches_its_public_key_only() -> None:
    key, other = pki.generate_centre_key(), pki.generate_centre_key()

    assert pki.key_pair_matches(key, key.public_key())
    assert not pki.key_pair_matches(key, other.public_key())


def test_centre_keys_are_in_the_openssh_format_flower_reads() -> None:
    key = pki.generate_centre_key()

    private = load_ssh_private_key(pki.private_key_to_openssh(key), None)
    public = pki.load_public_key(pki.public_key_to_openssh(key.public_key(), "css-x"))

    assert pki.key_pair_matches(private, public)  # type: ignore[arg-type]
    assert public.curve.name == "secp384r1"


def test_a_non_ec_public_key_is_refused() -> None:
    ed25519 = b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGv0tgFQ0v6S3ZzcW5mQv0Yg4fYJj5vRP6lqv6bpR0dE x"
    with pytest.raises(pki.PkiError, match="not an EC key"):
        pki.load_public_key(ed25519)


def test_init_writes_private_keys_owner_only_and_reuses_the_ca(tmp_path: Path) -> None:
    paths = pki.init_pki(tmp_path, ["fl.meq.example"])
    ca_before = paths.ca_certificate.read_bytes()

    pki.init_pki(tmp_path, ["fl.meq.example"])

    assert _mode(paths.ca_key) == 0o600 and _mode(paths.server_key) == 0o600
    assert paths.ca_certificate.read_bytes() == ca_before
    cert = x509.load_pem_x509_certificate(paths.server_certificate.read_bytes())
    assert {"localhost", "127.0.0.1", "fl.meq.example"} <= set(pki.certificate_names(cert))


def test_init_refuses_a_new_name_without_force(tmp_path: Path) -> None:
    pki.init_pki(tmp_path)

    with pytest.raises(pki.PkiError, match="--force"):
        pki.init_pki(tmp_path, ["new.example"])
    paths = pki.init_pki(tmp_path, ["new.example"], force=True)
    cert = x509.load_pem_x509_certificate(paths.server_certificate.read_bytes())
    assert "new.example" in pki.certificate_names(cert)


def test_add_centre_never_overwrites_a_key_unless_forced(tmp_path: Path) -> None:
    paths = pki.add_centre(tmp_path, "css-a")
    private = paths.centre_private_key("css-a")
    first = private.read_bytes()

    with pytest.raises(pki.PkiError, match="exists already"):
        pki.add_centre(tmp_path, "css-a")
    assert private.read_bytes() == first
    pki.add_centre(tmp_path, "css-a", force=True)
    assert private.read_bytes() != first
    assert _mode(private) == 0o600


@pytest.mark.parametrize("name", ["", "../evil", "css a", "-css", "é" * 3])
def test_bad_centre_names_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(pki.PkiError, match="not valid"):
        pki.add_centre(tmp_path, name)


def test_init_never_replaces_a_ca_whose_key_is_kept_offline(tmp_path: Path) -> None:
    paths = pki.init_pki(tmp_path)
    ca = paths.ca_certificate.read_bytes()
    paths.ca_key.rename(tmp_path / "offline.key")

    with pytest.raises(pki.PkiError, match="kept offline"):
        pki.init_pki(tmp_path)
    assert paths.ca_certificate.read_bytes() == ca


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen is not installed")
def test_a_key_made_as_the_centre_readme_says_is_accepted(tmp_path: Path) -> None:
    key = tmp_path / "centre.key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-b", "384", "-N", "", "-C", "css-x",
                    "-f", str(key)], check=True)
    listed = subprocess.run(["ssh-keygen", "-lf", f"{key}.pub"], check=True,
                            capture_output=True, text=True).stdout.split()[1]

    private = load_ssh_private_key(key.read_bytes(), None)
    public = pki.load_public_key(Path(f"{key}.pub").read_bytes())

    assert pki.key_pair_matches(private, public)  # type: ignore[arg-type]
    assert pki.fingerprint(public) == listed
