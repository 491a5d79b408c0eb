"""A per-cluster CA and serving certificate for the lab API server.

Why TLS at all in a lab: client-go (kubectl, measured with v1.37) never sends a bearer
token to an http:// server, so token authentication needs HTTPS. The CA goes into every
kubeconfig (`certificate-authority-data`) and is what the lab kubelet mounts into pods as
`ca.crt` next to their ServiceAccount token. EC P-256 keys: fast to make, accepted by Go.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local")


@dataclass(frozen=True)
class Certs:
    """PEM bytes of the CA certificate and the server's certificate and key."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    ca_key_pem: bytes = b""

    def ssl_context(self, workdir: Path) -> ssl.SSLContext:
        """A server SSLContext (ssl only loads chains from files: written under workdir)."""
        workdir.mkdir(parents=True, exist_ok=True)
        cert, key = workdir / "server.crt", workdir / "server.key"
        cert.write_bytes(self.cert_pem)
        key.touch(0o600)
        key.write_bytes(self.key_pem)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        return ctx


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_certs(cluster: str, hosts: list[str], ca_pem: bytes | None = None,
               ca_key_pem: bytes | None = None, days: int = 3650) -> Certs:
    """A CA (new, or the given one) and a server cert for hosts (IPs and DNS names)."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    if ca_pem and ca_key_pem:
        ca_cert = x509.load_pem_x509_certificate(ca_pem)
        ca_key = serialization.load_pem_private_key(ca_key_pem, None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = (x509.CertificateBuilder().subject_name(_name(f"wgslice-lab-ca-{cluster}"))
                   .issuer_name(_name(f"wgslice-lab-ca-{cluster}"))
                   .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now).not_valid_after(now + dt.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                   .add_extension(x509.KeyUsage(
                       digital_signature=True, key_cert_sign=True, crl_sign=True,
                       content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, encipher_only=False,
                       decipher_only=False), True)
                   .sign(ca_key, hashes.SHA256()))
        ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    sans: list[x509.GeneralName] = []
    for h in dict.fromkeys([*hosts, "127.0.0.1", "::1", *DEFAULT_NAMES, cluster]):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            if h:
                sans.append(x509.DNSName(h))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("kube-apiserver"))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(sans), False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .sign(ca_key, hashes.SHA256()))
    return Certs(ca_pem, cert.public_bytes(serialization.Encoding.PEM), _pem_key(key),
                 ca_key_pem or _pem_key(ca_key))


def load_or_make(cluster: str, hosts: list[str], data_dir: Path | None) -> Certs:
    """Keep the CA in data_dir across restarts (kubeconfigs stay valid); re-issue the cert."""
    if data_dir is None:
        return make_certs(cluster, hosts)
    ca, ca_key = data_dir / "ca.crt", data_dir / "ca.key"
    if ca.exists() and ca_key.exists():
        return make_certs(cluster, hosts, ca.read_bytes(), ca_key.read_bytes())
    certs = make_certs(cluster, hosts)
    data_dir.mkdir(parents=True, exist_ok=True)
    ca.write_bytes(certs.ca_pem)
    ca_key.touch(0o600)
    ca_key.write_bytes(certs.ca_key_pem)
    return certs
