"""Real services for the test suite: PostgreSQL, Orthanc (DICOMweb) and Chromium.

Each is started on 127.0.0.1 in a temporary directory and stopped afterwards. When a
service's binary is missing the tests that need it skip, unless
``HEPATRACK_REQUIRE_SERVICES=1`` (CI), where they fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_BIN_DIRS = [Path(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]
ORTHANC_BIN = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
ORTHANC_DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
CHROMIUM_BIN = Path("/usr/bin/chromium")


def services_required() -> bool:
    return os.environ.get("HEPATRACK_REQUIRE_SERVICES", "") not in ("", "0", "false")


def unavailable(service: str, why: str) -> None:
    """Skip locally, fail in CI (``HEPATRACK_REQUIRE_SERVICES=1``)."""
    msg = f"{service} unavailable: {why}"
    if services_required():
        pytest.fail(msg + " (HEPATRACK_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(msg)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """Terminate a service process; kill it if it has not exited within ``timeout``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as e:  # the service is still starting
            last = e
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not start within {timeout:.0f} s ({last})")


# --------------------------------------------------------------------------- PostgreSQL
@dataclass
class PostgresServer:
    url: str
    port: int
    datadir: Path

    def new_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(self.url.replace("postgresql+psycopg", "postgresql"),
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"


def _as_postgres_user() -> list[str]:
    """PostgreSQL refuses to run as root: run its binaries as the 'postgres' user."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root and 'runuser' is missing")
    return [runuser, "-u", "postgres", "--"]


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bindir = next((d for d in PG_BIN_DIRS if (d / "initdb").exists()), None)
    if bindir is None:
        unavailable("PostgreSQL", "no initdb under /usr/lib/postgresql/*/bin "
                    "(apt-get install postgresql)")
    tmp = Path(tempfile.mkdtemp(prefix="hepatrack-pg-"))
    datadir, sockdir = tmp / "data", tmp / "sock"
    sockdir.mkdir()
    pre = _as_postgres_user()
    if pre:
        shutil.chown(tmp, "postgres")
        shutil.chown(sockdir, "postgres")
        os.chmod(tmp, 0o755)
    port = free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    subprocess.run([*pre, str(bindir / "initdb"), "-D", str(datadir), "-U", "hepatrack",
                    "--auth=trust", "-E", "UTF8", "--no-sync"],
                   check=True, capture_output=True, env=env)
    log = tmp / "postgres.log"
    proc = subprocess.Popen(
        [*pre, str(bindir / "postgres"), "-D", str(datadir), "-p", str(port),
         "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={sockdir}",
         "-c", "fsync=off", "-c", "max_connections=50"],
        stdout=subprocess.DEVNULL, stderr=open(log, "wb"), env=env,  # noqa: SIM115
    )
    url = f"postgresql+psycopg://hepatrack@127.0.0.1:{port}/postgres"
    try:
        import psycopg

        def ready() -> bool:
            with psycopg.connect(f"postgresql://hepatrack@127.0.0.1:{port}/postgres",
                                 connect_timeout=2):
                return True

        _wait(ready, 30, f"PostgreSQL (log: {log})")
        yield PostgresServer(url=url, port=port, datadir=datadir)
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- Orthanc
@dataclass
class OrthancServer:
    base_url: str  # http://127.0.0.1:PORT
    username: str
    password: str

    @property
    def dicomweb_url(self) -> str:
        return f"{self.base_url}/dicom-web"

    def _request(self, method: str, path: str, data: bytes | None = None,
                 content_type: str | None = None) -> bytes:
        import base64

        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        if content_type:
            req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read()

    def upload(self, dicom_bytes: bytes) -> dict:
        """Store one DICOM instance through Orthanc's REST API."""
        return json.loads(self._request("POST", "/instances", dicom_bytes,
                                        "application/dicom"))

    def upload_dir(self, folder: Path) -> int:
        n = 0
        for f in sorted(Path(folder).rglob("*")):
            if f.is_file():
                self.upload(f.read_bytes())
                n += 1
        return n

    def clear(self) -> None:
        for pid in json.loads(self._request("GET", "/patients")):
            self._request("DELETE", f"/patients/{pid}")


@contextlib.contextmanager
def orthanc_server() -> Iterator[OrthancServer]:
    if not Path(ORTHANC_BIN).exists():
        unavailable("Orthanc", f"{ORTHANC_BIN} not found (apt-get install orthanc)")
    if not ORTHANC_DICOMWEB_PLUGIN.exists():
        unavailable("Orthanc DICOMweb", f"{ORTHANC_DICOMWEB_PLUGIN} not found "
                    "(apt-get install orthanc-dicomweb)")
    tmp = Path(tempfile.mkdtemp(prefix="hepatrack-orthanc-"))
    port = free_port()
    user, password = "hepatrack-test", "orthanc-test-secret"
    cfg = {
        "Name": "HEPATRACK-TEST",
        "StorageDirectory": str(tmp / "storage"),
        "IndexDirectory": str(tmp / "index"),
        "HttpPort": port,
        "HttpBindAddress": "127.0.0.1" ,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {user: password},
        "DicomServerEnabled": False,
        "Plugins": [str(ORTHANC_DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True,
                     "StudiesMetadata": "Full", "SeriesMetadata": "Full"},
        "StorageCompression": False,
        "HttpTimeout": 30,
    }
    cfg_path = tmp / "orthanc.json"
    cfg_path.write_text(json.dumps(cfg))
    log = tmp / "orthanc.log"
    proc = subprocess.Popen([ORTHANC_BIN, str(cfg_path)], stdout=subprocess.DEVNULL,
                            stderr=open(log, "wb"))  # noqa: SIM115
    server = OrthancServer(base_url=f"http://127.0.0.1:{port}", username=user,
                           password=password)
    try:
        _wait(lambda: server._request("GET", "/dicom-web/studies") is not None, 30,
              f"Orthanc (log: {log})")
        yield server
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- Chromium
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str:
    if not CHROMIUM_BIN.exists():
        unavailable("Chromium", f"{CHROMIUM_BIN} not found (apt-get install chromium)")
    return str(CHROMIUM_BIN)
