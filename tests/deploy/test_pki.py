"""The PKI helpers: right key and wrong key, file modes, never overwriting keys."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_ssh_private_key

from server.deployment import pki

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

    for key in (paths.ca_key, paths.operator_ca_key, paths.superlink_key, paths.proxy_key):
        assert _mode(key) == 0o600, key
    assert paths.ca_certificate.read_bytes() == ca_before
    cert = x509.load_pem_x509_certificate(paths.proxy_certificate.read_bytes())
    assert {"proxy", "localhost", "127.0.0.1", "fl.meq.example"} <= set(
        pki.certificate_names(cert))


def test_superlink_and_proxy_have_their_own_key_pairs(tmp_path: Path) -> None:
    paths = pki.init_pki(tmp_path, ["fl.meq.example"])
    superlink = x509.load_pem_x509_certificate(paths.superlink_certificate.read_bytes())
    proxy = x509.load_pem_x509_certificate(paths.proxy_certificate.read_bytes())
    _, ca = pki.load_ca(paths)

    assert superlink.public_key() != proxy.public_key()
    assert paths.superlink_key.read_bytes() != paths.proxy_key.read_bytes()
    assert pki.is_signed_by(superlink, ca) and pki.is_signed_by(proxy, ca)
    assert "superlink" in pki.certificate_names(superlink)
    assert "fl.meq.example" not in pki.certificate_names(superlink)


def test_private_keys_are_created_owner_only_before_any_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    opened: list[tuple[str, int, int]] = []
    real_open = os.open

    def recording_open(path, flags, mode=0o777, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append((str(path), flags, mode))
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    old_umask = os.umask(0)  # the most permissive umask: the mode must still be 0600
    try:
        paths = pki.add_centre(tmp_path, "css-a")
    finally:
        os.umask(old_umask)

    key_opens = [(f, m) for path, f, m in opened if path.endswith(".tmp") and "css-a.key" in path]
    assert key_opens, opened
    flags, mode = key_opens[0]
    assert flags & os.O_CREAT and flags & os.O_EXCL and mode == 0o600
    assert _mode(paths.centre_private_key("css-a")) == 0o600
    assert not list(tmp_path.rglob("*.tmp"))


def test_replaced_keys_are_0600_whatever_the_old_file_was(tmp_path: Path) -> None:
    paths = pki.init_pki(tmp_path)
    pki.add_centre(tmp_path, "css-a")
    for key in (paths.superlink_key, paths.proxy_key, paths.centre_private_key("css-a")):
        key.chmod(0o644)

    pki.init_pki(tmp_path, force=True)
    pki.add_centre(tmp_path, "css-a", force=True)
    assert _mode(paths.superlink_key) == _mode(paths.proxy_key) == 0o600
    assert _mode(paths.centre_private_key("css-a")) == 0o600
    paths.proxy_key.chmod(0o644)
    pki.renew_server(tmp_path)
    assert _mode(paths.proxy_key) == 0o600


def test_renew_server_issues_new_keys_and_keeps_the_names_and_the_ca(tmp_path: Path) -> None:
    paths = pki.init_pki(tmp_path, ["fl.meq.example"])
    ca, old_proxy = paths.ca_certificate.read_bytes(), paths.proxy_key.read_bytes()
    old_superlink = paths.superlink_key.read_bytes()

    pki.renew_server(tmp_path, ["10.20.30.40"])

    proxy = x509.load_pem_x509_certificate(paths.proxy_certificate.read_bytes())
    assert paths.ca_certificate.read_bytes() == ca
    assert paths.proxy_key.read_bytes() != old_proxy
    assert paths.superlink_key.read_bytes() != old_superlink
    assert {"proxy", "fl.meq.example", "10.20.30.40"} <= set(pki.certificate_names(proxy))
    assert pki.is_signed_by(proxy, pki.load_ca(paths)[1])
    paths.ca_key.unlink()
    with pytest.raises(pki.PkiError, match="No CA key"):
        pki.renew_server(tmp_path)


def test_an_operator_certificate_is_a_client_certificate_of_the_operator_ca(
    tmp_path: Path,
) -> None:
    paths = pki.init_pki(tmp_path)
    pki.add_operator(tmp_path, "jdoe")
    cert = x509.load_pem_x509_certificate(paths.operator_certificate("jdoe").read_bytes())

    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    assert pki.is_signed_by(cert, pki.load_operator_ca(paths)[1])
    assert not pki.is_signed_by(cert, pki.load_ca(paths)[1])
    assert _mode(paths.operator_key("jdoe")) == 0o600
    with pytest.raises(pki.PkiError, match="exists already"):
        pki.add_operator(tmp_path, "jdoe")


def test_the_operator_ca_kept_offline_is_kept_and_needed_to_add_an_operator(
    tmp_path: Path,
) -> None:
    paths = pki.init_pki(tmp_path)
    operator_ca = paths.operator_ca_certificate.read_bytes()
    paths.operator_ca_key.rename(tmp_path / "offline.key")

    pki.init_pki(tmp_path)

    assert paths.operator_ca_certificate.read_bytes() == operator_ca
    with pytest.raises(pki.PkiError, match="No operator CA key"):
        pki.add_operator(tmp_path, "jdoe")


def test_init_refuses_a_new_name_without_force(tmp_path: Path) -> None:
    pki.init_pki(tmp_path)

    with pytest.raises(pki.PkiError, match="--force"):
        pki.init_pki(tmp_path, ["new.example"])
    paths = pki.init_pki(tmp_path, ["new.example"], force=True)
    cert = x509.load_pem_x509_certificate(paths.proxy_certificate.read_bytes())
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
