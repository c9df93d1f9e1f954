"""No key material from a kubeconfig is left in temp files: the kubeconfig's *-data fields are loaded into
anonymous in-memory files, so nothing is written to $TMPDIR even when the process dies without cleanup."""

from __future__ import annotations

import base64
import datetime
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="in-memory files need Linux memfd_create")


def _key_and_cert() -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "meshtrace-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def material() -> tuple[bytes, bytes]:
    return _key_and_cert()


def kubeconfig(path: Path, key: bytes, cert: bytes, server: str = "https://127.0.0.1:1") -> Path:
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "other",
        "clusters": [{"name": "c", "cluster": {"server": server, "certificate-authority-data": b64(cert)}}],
        "users": [{"name": "u", "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}],
        "contexts": [{"name": "test", "context": {"cluster": "c", "user": "u"}},
                     {"name": "other", "context": {"cluster": "c", "user": "u"}}],
    }))
    return path


def holders(tmp: Path, key: bytes, cert: bytes) -> list[str]:
    """Files directly in ``tmp`` (where ``mkstemp`` writes) that hold the private key or the certificate (CA)."""
    out = []
    for f in tmp.iterdir():
        try:
            if f.is_file() and not f.is_symlink() and f.stat().st_size < 1_000_000 \
                    and (key in (data := f.read_bytes()) or cert in data):
                out.append(f.name)
        except OSError:  # another user's file, or gone meanwhile
            continue
    return out


def run_and_die(code: str, tmpdir: Path) -> None:
    """Run ``code`` in a fresh interpreter with TMPDIR=tmpdir, ending it with os._exit (no atexit, like a
    kernel that is killed)."""
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONPATH": str(Path(__file__).parents[2] / "lib")}
    script = textwrap.dedent(code) + "\nimport os\nos._exit(0)\n"
    cp = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr


def test_the_stock_loader_leaves_the_key_behind_when_the_process_dies(tmp_path: Path, material) -> None:
    """The control: the detection below finds what the official loader leaves in TMPDIR."""
    key, cert = material
    cfg = kubeconfig(tmp_path / "kubeconfig", key, cert)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    run_and_die(f"from kubernetes import config\nconfig.new_client_from_config({str(cfg)!r}, 'test')", tmp)
    assert len(holders(tmp, key, cert)) >= 2   # the CA and the client key (and certificate)


def test_load_client_writes_no_key_material_even_when_the_process_dies(tmp_path: Path, material) -> None:
    key, cert = material
    cfg = kubeconfig(tmp_path / "kubeconfig", key, cert)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    run_and_die(f"""
        from meshtrace.kube.credentials import load_client
        api = load_client({str(cfg)!r}, "test")
        c = api.configuration
        assert open(c.key_file, "rb").read() == {key!r}, c.key_file
        assert open(c.ssl_ca_cert, "rb").read() == {cert!r}
        assert c.key_file.startswith("/proc/self/fd/") and c.cert_file.startswith("/proc/self/fd/")
        import ssl
        ctx = ssl.create_default_context(cafile=c.ssl_ca_cert)
        ctx.load_cert_chain(c.cert_file, c.key_file)    # what urllib3 does on each connection
        api2 = load_client({str(cfg)!r}, "test")        # a second connection reuses the same in-memory files
        assert api2.configuration.key_file == c.key_file
    """, tmp)
    assert holders(tmp, key, cert) == []


def test_load_client_leaves_the_kubeconfig_file_untouched(tmp_path: Path, material) -> None:
    from meshtrace.kube.credentials import load_client

    key, cert = material
    cfg = kubeconfig(tmp_path / "kubeconfig", key, cert)
    before = cfg.read_bytes()
    api = load_client(str(cfg), "test")
    assert api.configuration.host == "https://127.0.0.1:1" and cfg.read_bytes() == before


def test_connect_refuses_to_use_the_current_context_silently(tmp_path: Path, material) -> None:
    from meshtrace.errors import ClusterError
    from meshtrace.kube import connect

    cfg = kubeconfig(tmp_path / "kubeconfig", *material)
    with pytest.raises(ClusterError, match="no context named.*cluster.context"):
        connect(str(cfg), None)
    with pytest.raises(ClusterError, match="cannot load it.*nope"):
        connect(str(cfg), "nope")
