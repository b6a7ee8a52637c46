"""The nginx configuration: one template, placeholders in step, only fleet routes for
the centres, and a configuration nginx accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.deployment import proxy
from server.deployment.pki import PkiPaths


def _settings(pki_dir: PkiPaths) -> proxy.ProxySettings:
    return proxy.ProxySettings(
        centres_listen="127.0.0.1:18443",
        operator_listen="127.0.0.1:18444",
        superlink_address="127.0.0.1:18000",
        superlink_tls_name="localhost",
        certificate=pki_dir.proxy_certificate,
        certificate_key=pki_dir.proxy_key,
        ca_certificate=pki_dir.ca_certificate,
        operator_ca_certificate=pki_dir.operator_ca_certificate,
    )


def _server_blocks(text: str) -> list[str]:
    return re.split(r"\nserver \{", text)[1:]


def test_template_placeholders_are_the_documented_ones() -> None:
    text = proxy.template_path().read_text(encoding="utf-8")

    assert proxy.template_placeholders(text) == set(proxy.TEMPLATE_VARIABLES)


def test_render_fills_every_placeholder_and_keeps_nginx_variables(pki_dir: PkiPaths) -> None:
    text = proxy.render_site(_settings(pki_dir))

    assert "${" not in text
    assert "$host" in text and "$proxy_add_x_forwarded_for" in text
    assert "listen 127.0.0.1:18443 ssl;" in text


def test_centres_listener_routes_only_fleet_and_health(pki_dir: PkiPaths) -> None:
    centres, operator = _server_blocks(proxy.render_site(_settings(pki_dir)))

    assert "18443" in centres and "18444" in operator
    centres_locations = re.findall(r"location\s+(=?\s*\S+)\s*\{", centres)
    assert centres_locations == ["/v1/fleet/", "= /health", "/"]
    assert "/v1/control" not in centres.split("location /v1/fleet/")[1]
    assert "/v1/runtime" not in proxy.render_site(_settings(pki_dir)).split("upstream")[1]
    assert "/v1/control/" in operator and "/v1/fleet" not in operator


def test_only_the_operator_listener_demands_an_operator_certificate(pki_dir: PkiPaths) -> None:
    centres, operator = _server_blocks(proxy.render_site(_settings(pki_dir)))

    assert "ssl_verify_client on;" in operator
    assert f"ssl_client_certificate {pki_dir.operator_ca_certificate};" in operator
    assert "ssl_verify_client" not in centres and "ssl_client_certificate" not in centres
    # Each listener shows the proxy's own certificate, never the SuperLink's.
    assert str(pki_dir.superlink_key) not in centres + operator
    assert centres.count(f"ssl_certificate_key {pki_dir.proxy_key};") == 1


def test_unknown_placeholders_are_refused(pki_dir: PkiPaths) -> None:
    with pytest.raises(proxy.ProxyError, match="NOPE"):
        proxy.render_site(_settings(pki_dir), template="listen ${NOPE};")


def test_nginx_accepts_the_rendered_configuration(
    nginx: str, pki_dir: PkiPaths, tmp_path: Path
) -> None:
    main = proxy.write_config(tmp_path, _settings(pki_dir))

    proxy.check_config(tmp_path, main)  # raises ProxyError if nginx -t fails

    assert (tmp_path / "perseverance.conf").is_file()


def test_nginx_rejects_a_broken_configuration(
    nginx: str, pki_dir: PkiPaths, tmp_path: Path
) -> None:
    main = proxy.write_config(tmp_path, _settings(pki_dir))
    (tmp_path / "perseverance.conf").write_text("server { listen nowhere; }\n")

    with pytest.raises(proxy.ProxyError, match="nginx rejects"):
        proxy.check_config(tmp_path, main)
