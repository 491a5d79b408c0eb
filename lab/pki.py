"""Each lab cluster's PKI, laid out the way kubeadm lays out ``/etc/kubernetes/pki``.

One CA per cluster signs everything the real control plane needs to authenticate its
parts to each other:

- ``apiserver``: the API server's serving certificate, valid for every address the cluster
  is reached at (127.0.0.1 through the lab's relay, the control-plane address, the hub's WAN
  address, the ``kubernetes`` Service names and its ClusterIP);
- ``sa.key`` / ``sa.pub``: the service-account token signing pair;
- client certificates whose subject is the identity RBAC and the Node authorizer see:
  ``system:kube-controller-manager``, ``system:kube-scheduler``, the API server's client to
  kubelets, and one ``system:node:<name>`` (group ``system:nodes``) per node;
- per node a kubelet serving certificate, so the API server verifies the kubelet it proxies
  ``kubectl logs`` to (``--kubelet-certificate-authority``).

EC P-256 keys: quick to make on two cores and accepted by Go's TLS stack. Files are written
once and reused when the lab's supervisors restart.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Names every API server certificate carries, as kubeadm's does.
SERVICE_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local")
VALIDITY = dt.timedelta(days=365)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    tmp.replace(path)


@dataclass(frozen=True)
class ClusterPki:
    """Paths of one cluster's PKI files (``clusters/<name>/pki``)."""

    root: Path

    @property
    def ca_crt(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def sa_key(self) -> Path:
        return self.root / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.root / "sa.pub"

    def crt(self, name: str) -> Path:
        return self.root / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.root / f"{name}.key"

    def pair(self, name: str) -> tuple[Path, Path]:
        return self.crt(name), self.key(name)


class _Signer:
    def __init__(self, pki: ClusterPki, cluster: str) -> None:
        self.pki = pki
        if pki.ca_crt.exists() and pki.ca_key.exists():
            self.ca = x509.load_pem_x509_certificate(pki.ca_crt.read_bytes())
            key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            self.ca_key = key
            return
        self.ca_key = _key()
        now = dt.datetime.now(dt.UTC)
        name = _name(f"wgslice-lab-{cluster}-ca")
        self.ca = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + 10 * VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        _write(pki.ca_key, _key_pem(self.ca_key), 0o600)
        _write(pki.ca_crt, self.ca.public_bytes(serialization.Encoding.PEM), 0o644)

    def issue(self, name: str, cn: str, orgs: tuple[str, ...] = (), *, client: bool = False,
              server: bool = False, hosts: tuple[str, ...] = ()) -> None:
        crt, key_path = self.pki.pair(name)
        if crt.exists() and key_path.exists():
            return
        key = _key()
        now = dt.datetime.now(dt.UTC)
        usages = ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else []) + \
            ([ExtendedKeyUsageOID.SERVER_AUTH] if server else [])
        builder = (
            x509.CertificateBuilder().subject_name(_name(cn, orgs))
            .issuer_name(self.ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if hosts:
            sans: list[x509.GeneralName] = []
            for h in hosts:
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(h)))
                except ValueError:
                    sans.append(x509.DNSName(h))
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.ca_key, hashes.SHA256())
        _write(key_path, _key_pem(key), 0o600)
        _write(crt, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def ensure(root: Path, cluster: str, api_hosts: list[str], nodes: dict[str, str]) -> ClusterPki:
    """Create (or complete) the PKI of one cluster; ``nodes`` maps node name -> its IP."""
    root.mkdir(parents=True, exist_ok=True)
    pki = ClusterPki(root)
    signer = _Signer(pki, cluster)
    signer.issue("apiserver", "kube-apiserver", server=True,
                 hosts=(*SERVICE_NAMES, *api_hosts))
    signer.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                 ("system:masters",), client=True)
    signer.issue("controller-manager", "system:kube-controller-manager", client=True)
    signer.issue("scheduler", "system:kube-scheduler", client=True)
    signer.issue("admin", "kubernetes-admin", ("system:masters",), client=True)
    signer.issue("front-proxy-client", "front-proxy-client", client=True)
    for node, ip in nodes.items():
        signer.issue(f"node-{node}", f"system:node:{node}", ("system:nodes",), client=True)
        signer.issue(f"kubelet-{node}", node, server=True, hosts=(node, ip))
    if not (pki.sa_key.exists() and pki.sa_pub.exists()):
        sa = _key()
        _write(pki.sa_key, _key_pem(sa), 0o600)
        _write(pki.sa_pub, sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)
    return pki
