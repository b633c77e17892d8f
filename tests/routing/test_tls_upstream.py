"""Targets with https URLs: the certificate is verified against the trusted CA certificates."""

import datetime
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from routing import client
from tests.upstream import RecordingUpstream

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """Write a self-signed certificate for 127.0.0.1 and its key; return (certificate path, key path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jwtgate test upstream")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "upstream.pem", folder / "upstream.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def tls_upstream(certificate):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server = RecordingUpstream(tls_context=context).start()
    yield server
    server.stop()


@pytest.fixture
def trusted_certificate(certificate, monkeypatch):
    """Make the test certificate the only trusted CA certificate of the forwarding client."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    monkeypatch.setattr(client, "_tls_context", None)


def test_https_target_with_trusted_certificate(gateway, http, make_route, tls_upstream, trusted_certificate):
    make_route(paths="/api/orders/**", upstream_url=tls_upstream.url, auth="public")
    response = http.get(f"{gateway}/api/orders/1")
    assert response.status_code == 200
    assert [received.target for received in tls_upstream.received] == ["/api/orders/1"]


def test_https_target_with_untrusted_certificate(gateway, http, make_route, tls_upstream, monkeypatch):
    monkeypatch.setattr(client, "_tls_context", None)
    make_route(paths="/api/orders/**", upstream_url=tls_upstream.url, auth="public")
    response = http.get(f"{gateway}/api/orders/1")
    assert response.status_code == 502
    assert response.json()["code"] == "upstream_unavailable"
    assert tls_upstream.received == []
