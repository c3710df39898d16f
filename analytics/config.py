"""Settings, read from the environment and ``HEPATRACK_HOME/config.toml``.

Precedence: explicit arguments > environment variables > config.toml > defaults.
The home directory holds the SQLite store, DICOM files, model artifacts and the site
secret used for pseudonyms.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from analytics.errors import ConfigError
from analytics.features import radiomics_configs

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True)
class IngestLimits:
    """Caps applied before and during parsing (RELIABILITY.md items 3, 5-7, 11)."""

    max_upload_bytes: int = 4 * GiB
    max_series_bytes: int = 2 * GiB
    max_file_bytes: int = 1 * GiB
    max_zip_entries: int = 20_000
    max_zip_ratio: float = 200.0
    max_pixel_bytes: int = 1 * GiB
    max_inflated_bytes: int = 256 * MiB
    parse_memory_bytes: int = 2 * GiB
    parse_timeout_s: float = 60.0


@dataclass(frozen=True)
class PacsSettings:
    """One DICOMweb endpoint. Credentials never reach logs.

    Credentials go only to URLs under ``url``: same scheme, host and port (80/443 when not
    written) and a path below ``url``'s path on a segment boundary.

    Time limits: ``connect_timeout_s`` and ``read_timeout_s`` bound each socket wait;
    ``request_deadline_s`` bounds one search request in total (headers and body, however
    slowly the server trickles), ``retrieval_deadline_s`` one series retrieval with its
    retries. Over a deadline the connection is cut and the PACS step fails.
    """

    name: str = "pacs"
    url: str = ""
    username: str | None = None
    password: str | None = None
    token: str | None = None
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    max_retries: int = 2
    request_deadline_s: float = 60.0
    retrieval_deadline_s: float = 900.0


@dataclass(frozen=True)
class Settings:
    """Everything HepaTrack reads from its environment."""

    home: Path = field(default_factory=lambda: Path(".hepatrack").resolve())
    db_url: str | None = None
    deidentify: bool = True
    limits: IngestLimits = field(default_factory=IngestLimits)
    pacs: tuple[PacsSettings, ...] = ()
    dask_scheduler: str | None = None
    session_timeout_min: int = 60
    #: the site's default radiomics configuration (analytics.features.radiomics_configs)
    radiomics_config: str = radiomics_configs.DEFAULT_CONFIG
    #: models trained here read imaging values measured on an automatic segmentation
    #: (each passed the segmentation quality gate; values a clinician rejected or the
    #: gate withheld are missing either way). False: only values from delivered masks
    #: (SEG, RTSTRUCT, NIfTI) train and feed the model, for sites that have not checked
    #: the automatic engine on their own scans. The model stores the rule it was trained
    #: with and applies it when it scores.
    model_automatic_segmentation: bool = True

    @property
    def database_url(self) -> str:
        """SQLAlchemy URL: ``db_url`` if set, else SQLite in the home directory."""
        return self.db_url or f"sqlite:///{self.home / 'hepatrack.db'}"

    @property
    def dicom_dir(self) -> Path:
        return self.home / "dicom"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def secret_path(self) -> Path:
        return self.home / "site_secret.key"

    def ensure_home(self) -> Path:
        """Create the home directory tree (idempotent) and return it."""
        for d in (self.home, self.dicom_dir, self.models_dir, self.home / "tmp"):
            d.mkdir(parents=True, exist_ok=True)
        return self.home

    def site_secret(self) -> bytes:
        """The per-site key for pseudonym HMACs, created once with mode 0600."""
        self.ensure_home()
        path = self.secret_path
        if not path.exists():
            key = secrets.token_bytes(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key)
        data = path.read_bytes()
        if len(data) < 32:
            raise ConfigError(f"{path}: site secret is {len(data)} bytes, expected at least 32")
        return data


def _coerce(kind: type, raw: object, name: str) -> object:
    try:
        if kind is bool or kind == "bool":
            if isinstance(raw, bool):
                return raw
            return str(raw).strip().lower() in {"1", "true", "yes", "on"}
        if kind in (int, "int"):
            return int(raw)  # type: ignore[arg-type]
        if kind in (float, "float"):
            return float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError) as e:
        raise ConfigError(f"setting {name}: cannot read {raw!r} as {kind}") from e
    return raw


#: the last path segment of a DICOMweb service root: Orthanc's ``/dicom-web`` (also the
#: DICOMweb plugins of most archives), Google Cloud Healthcare's ``/dicomWeb`` and
#: dcm4chee-arc's ``/rs`` (compared ignoring case)
DICOMWEB_ROOTS = ("dicom-web", "dicomweb", "rs")


def shown_pacs_url(url: str) -> str:
    """``url`` without credentials, query or fragment: safe to show and log."""
    parts = urlsplit(url)
    netloc = (parts.hostname or "?") + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def dicomweb_root_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a PACS's DICOMweb root, or None.

    The root is the URL the DICOMweb paths (``/studies``, ``/series``) are appended to:
    an http(s) URL whose path ends in one of :data:`DICOMWEB_ROOTS` (Orthanc:
    ``http://host:8042/dicom-web``). Orthanc's own REST API at ``http://host:8042``
    answers DICOMweb requests with a bare HTTP 400.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ("expected an http(s) URL of the PACS's DICOMweb root, "
                "e.g. http://pacs.example.org:8042/dicom-web")
    last = parts.path.rstrip("/").rsplit("/", 1)[-1]
    if last.lower() in DICOMWEB_ROOTS:
        return None
    suggestion = shown_pacs_url(url).rstrip("/") + "/dicom-web"
    return ("expected the DICOMweb root, a URL ending in /dicom-web (Orthanc; /dicomWeb on "
            f"Google Cloud Healthcare, /rs on dcm4chee-arc), e.g. {suggestion}")


def _check_pacs_url(url: object, setting: str) -> None:
    problem = dicomweb_root_problem(str(url))
    if problem is not None:
        raise ConfigError(f"{setting} = {shown_pacs_url(str(url))!r}: {problem}",
                          hint="fix the url of this PACS endpoint, then restart HepaTrack")


def _pacs_endpoints(file_cfg: dict, cfg_file: Path) -> tuple[PacsSettings, ...]:
    """The ``[[pacs]]`` entries of config.toml, then ``HEPATRACK_PACS_URL``; each ``url``
    must be a DICOMweb root (:func:`dicomweb_root_problem`)."""
    pacs = []
    for i, p in enumerate(file_cfg.get("pacs", [])):
        if "url" not in p:
            raise ConfigError(f"{cfg_file} [[pacs]] entry {i + 1}: 'url' is required")
        known = {f.name: f.type for f in fields(PacsSettings)}
        unknown = set(p) - set(known)
        if unknown:
            raise ConfigError(f"{cfg_file} [[pacs]] entry {i + 1}: unknown keys "
                              f"{sorted(unknown)}; expected some of {sorted(known)}")
        _check_pacs_url(p["url"], f"{cfg_file} [[pacs]] entry {i + 1} url")
        pacs.append(PacsSettings(**{k: _coerce(known[k], v, f"pacs.{k}") for k, v in p.items()}))
    if os.environ.get("HEPATRACK_PACS_URL"):
        _check_pacs_url(os.environ["HEPATRACK_PACS_URL"], "HEPATRACK_PACS_URL")
        pacs.append(
            PacsSettings(
                name="env",
                url=os.environ["HEPATRACK_PACS_URL"],
                username=os.environ.get("HEPATRACK_PACS_USER"),
                password=os.environ.get("HEPATRACK_PACS_PASSWORD"),
                token=os.environ.get("HEPATRACK_PACS_TOKEN"),
            )
        )
    return tuple(pacs)


def load_settings(home: str | os.PathLike[str] | None = None) -> Settings:
    """Build the settings from arguments, environment and ``config.toml``.

    Parameters
    ----------
    home
        Home directory; default ``$HEPATRACK_HOME`` or ``./.hepatrack``.

    Raises
    ------
    ConfigError
        If ``config.toml`` is unreadable, a value has the wrong type, or a PACS ``url``
        is not a DICOMweb root.
    """
    home_path = Path(home or os.environ.get("HEPATRACK_HOME") or ".hepatrack").expanduser()
    home_path = home_path.resolve()
    file_cfg: dict = {}
    cfg_file = home_path / "config.toml"
    if cfg_file.exists():
        try:
            file_cfg = tomllib.loads(cfg_file.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"{cfg_file}: not valid TOML ({e})") from e

    limits_cfg = dict(file_cfg.get("limits", {}))
    for f in fields(IngestLimits):
        env = os.environ.get(f"HEPATRACK_{f.name.upper()}")
        if env is not None:
            limits_cfg[f.name] = env
    limits = IngestLimits()
    if limits_cfg:
        known = {f.name: f.type for f in fields(IngestLimits)}
        unknown = set(limits_cfg) - set(known)
        if unknown:
            raise ConfigError(f"{cfg_file} [limits]: unknown keys {sorted(unknown)}")
        limits = replace(
            limits, **{k: _coerce(known[k], v, f"limits.{k}") for k, v in limits_cfg.items()}
        )

    pacs = _pacs_endpoints(file_cfg, cfg_file)

    deid_raw = os.environ.get("HEPATRACK_DEIDENTIFY", file_cfg.get("deidentify", True))
    radiomics_config = _radiomics_config(
        os.environ.get("HEPATRACK_RADIOMICS_CONFIG") or file_cfg.get("radiomics_config"),
        cfg_file)
    return Settings(
        home=home_path,
        db_url=os.environ.get("HEPATRACK_DB_URL") or file_cfg.get("db_url"),
        deidentify=bool(_coerce(bool, deid_raw, "deidentify")),
        limits=limits,
        pacs=pacs,
        dask_scheduler=os.environ.get("HEPATRACK_SCHEDULER") or file_cfg.get("dask_scheduler"),
        session_timeout_min=int(
            _coerce(int, file_cfg.get("session_timeout_min", 60), "session_timeout_min")
        ),
        radiomics_config=radiomics_config,
        model_automatic_segmentation=bool(_coerce(
            bool, os.environ.get("HEPATRACK_MODEL_AUTOMATIC_SEGMENTATION",
                                 file_cfg.get("model_automatic_segmentation", True)),
            "model_automatic_segmentation")),
    )


def _radiomics_config(name: object, cfg_file: Path) -> str:
    """The configured radiomics configuration name, checked against the registry."""
    if name is None:
        return radiomics_configs.DEFAULT_CONFIG
    if not isinstance(name, str) or name not in radiomics_configs.CONFIGS:
        raise ConfigError(f"{cfg_file} (or HEPATRACK_RADIOMICS_CONFIG): radiomics_config "
                          f"{name!r} is not a radiomics configuration; expected one of: "
                          f"{', '.join(radiomics_configs.names())}")
    return name
