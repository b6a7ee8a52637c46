"""The reverse proxy in front of the SuperLink: render nginx's configuration.

The http-level configuration is one template, ``deploy/nginx/perseverance.conf.template``,
shared with the ministry's proxy container (which renders it with ``envsubst``). This
module renders it with the same variable names and, for the loopback launcher, wraps it
in a main configuration that runs nginx as a foreground master with its own prefix,
pid file, logs and temporary folders (no system service is touched).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import string
import subprocess
from dataclasses import dataclass
from pathlib import Path

from common.errors import ExitCode, PerseveranceError
from common.i18n.catalogue import N_

#: Placeholders of the template, in the order the container's entrypoint lists them.
TEMPLATE_VARIABLES: tuple[str, ...] = (
    "PROXY_CENTRES_LISTEN",
    "PROXY_OPERATOR_LISTEN",
    "SUPERLINK_ADDRESS",
    "SUPERLINK_TLS_NAME",
    "TLS_CERTIFICATE",
    "TLS_CERTIFICATE_KEY",
    "TLS_CA_CERTIFICATE",
    "OPERATOR_CA_CERTIFICATE",
    "CONSOLE_ADDRESS",
    "OPERATOR_CRL",
)
_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


class ProxyError(PerseveranceError):
    exit_code = ExitCode.DEPLOYMENT
    """The proxy cannot be configured or started (message is one sentence)."""


@dataclass(frozen=True)
class ProxySettings:
    """Values of the template's placeholders.

    Attributes
    ----------
    centres_listen, operator_listen : str
        nginx ``listen`` addresses (``host:port``) of the centres' and operators' listeners.
    superlink_address : str
        ``host:port`` of the SuperLink's single HTTPS port.
    superlink_tls_name : str
        DNS name the proxy checks in the SuperLink's certificate (not an IP address).
    certificate, certificate_key, ca_certificate : Path
        The proxy's own certificate and key, and the CA that signed the SuperLink's
        certificate.
    operator_ca_certificate : Path
        The operator CA: the operator listener accepts only client certificates it signed.
    console_address : str
        ``host:port`` of the operations console (``perseverance-server console``), served
        under ``/console/`` on the operator listener only.
    operator_crl : Path | None
        The operator CA's revocation list; default: beside the operator CA's certificate
        with the suffix ``.crl`` (``operator-ca.crl`` of a PKI folder), as the proxy
        container's entrypoint derives it.
    """

    centres_listen: str
    operator_listen: str
    superlink_address: str
    superlink_tls_name: str
    certificate: Path
    certificate_key: Path
    ca_certificate: Path
    operator_ca_certificate: Path
    console_address: str = "127.0.0.1:8080"
    operator_crl: Path | None = None

    def as_variables(self) -> dict[str, str]:
        """Return the values keyed by the template's placeholder names."""
        return {
            "PROXY_CENTRES_LISTEN": self.centres_listen,
            "PROXY_OPERATOR_LISTEN": self.operator_listen,
            "SUPERLINK_ADDRESS": self.superlink_address,
            "SUPERLINK_TLS_NAME": self.superlink_tls_name,
            "TLS_CERTIFICATE": str(self.certificate),
            "TLS_CERTIFICATE_KEY": str(self.certificate_key),
            "TLS_CA_CERTIFICATE": str(self.ca_certificate),
            "OPERATOR_CA_CERTIFICATE": str(self.operator_ca_certificate),
            "CONSOLE_ADDRESS": self.console_address,
            "OPERATOR_CRL": str(self.operator_crl or
                                self.operator_ca_certificate.with_suffix(".crl")),
        }


def template_path() -> Path:
    """Return the template's path in the source tree (the launcher runs from a clone)."""
    path = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "perseverance.conf.template"
    if not path.is_file():
        raise ProxyError(N_("The proxy template %(path)s is missing: run from a clone of the "
                            "project.", path=path))
    return path


def template_placeholders(text: str) -> set[str]:
    """Return the names of the ``${NAME}`` placeholders in a template."""
    return set(_PLACEHOLDER.findall(text))


def render_site(settings: ProxySettings, template: str | None = None) -> str:
    """Render the http-level configuration (the two listeners and the upstream)."""
    text = template if template is not None else template_path().read_text(encoding="utf-8")
    values = settings.as_variables()
    missing = template_placeholders(text) - set(values)
    if missing:
        raise ProxyError(N_("The proxy template uses unknown placeholders %(names)s.",
                            names=sorted(missing)))
    # safe_substitute leaves nginx's own `$host`-style variables untouched.
    return string.Template(text).safe_substitute(values)


def _worker_user() -> str:
    """Return the ``user`` directive when running as root (workers drop to nobody)."""
    if os.geteuid() != 0:
        return ""
    nobody = pwd.getpwnam("nobody")
    return f"user nobody {grp.getgrgid(nobody.pw_gid).gr_name};\n"


def render_main(prefix: Path, site_file: Path) -> str:
    """Render a main ``nginx.conf`` that keeps every file nginx writes under ``prefix``."""
    temp = prefix / "tmp"
    user = _worker_user()
    return (
        "# Generated by server/deployment/proxy.py for the loopback launcher; do not edit.\n"
        f"{user}"
        "daemon off;\n"
        "master_process on;\n"
        "worker_processes 1;\n"
        f"pid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'error.log'} warn;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"    access_log {prefix / 'access.log'};\n"
        "    # Bodies and responses stay in memory: workers run as nobody when we are root,\n"
        "    # and may not be able to reach a temporary folder under a private parent.\n"
        "    client_body_buffer_size 32m;\n"
        "    proxy_max_temp_file_size 0;\n"
        f"    client_body_temp_path {temp / 'client_body'};\n"
        f"    proxy_temp_path {temp / 'proxy'};\n"
        f"    fastcgi_temp_path {temp / 'fastcgi'};\n"
        f"    uwsgi_temp_path {temp / 'uwsgi'};\n"
        f"    scgi_temp_path {temp / 'scgi'};\n"
        f"    include {site_file};\n"
        "}\n"
    )


def nginx_binary() -> str:
    """Return the path of the nginx executable, or raise :class:`ProxyError`."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise ProxyError(N_(
            "nginx is not installed; run `bash deploy/install-system-packages.sh` first."
        ))
    return found


def write_config(prefix: Path, settings: ProxySettings) -> Path:
    """Write the site and main configuration under ``prefix``; return the main file."""
    prefix.mkdir(parents=True, exist_ok=True)
    temp = prefix / "tmp"
    temp.mkdir(exist_ok=True)
    if os.geteuid() == 0:  # workers run as nobody and buffer request bodies here
        nobody = pwd.getpwnam("nobody")
        os.chown(temp, nobody.pw_uid, nobody.pw_gid)
    site = prefix / "perseverance.conf"
    site.write_text(render_site(settings), encoding="utf-8")
    main = prefix / "nginx.conf"
    main.write_text(render_main(prefix, site), encoding="utf-8")
    return main


def nginx_command(prefix: Path, main_config: Path) -> list[str]:
    """Return the command line that runs nginx in the foreground with this prefix."""
    return [nginx_binary(), "-p", f"{prefix}/", "-c", str(main_config),
            "-e", str(prefix / "error.log")]


def check_config(prefix: Path, main_config: Path) -> None:
    """Run ``nginx -t`` on the configuration; raise :class:`ProxyError` if it is invalid."""
    result = subprocess.run(
        [*nginx_command(prefix, main_config), "-t", "-q"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise ProxyError(N_("nginx rejects the configuration: %(reason)s",
                            reason=detail[-1] if detail else "?"))
