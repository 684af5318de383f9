"""Where a lake lives: a `pyarrow.fs` file system and a root path inside it.

``file:///path/lake`` is a local directory; ``s3://bucket/prefix`` is any S3-compatible
store, reached through ``endpoint`` (empty for AWS itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

import pyarrow.fs as pfs

from tickwise.config import parse_backend_url
from tickwise.exceptions import BackendError, ConfigError


@dataclass(frozen=True, slots=True)
class LakeLocation:
    """A file system and the lake's root inside it (no trailing slash).

    Examples
    --------
    >>> loc = open_location("file:///tmp/tw-doc-lake")
    >>> loc.root, loc.is_local
    ('/tmp/tw-doc-lake', True)
    """

    url: str
    filesystem: pfs.FileSystem
    root: str
    is_local: bool

    def join(self, *parts: str) -> str:
        return "/".join([self.root, *[p.strip("/") for p in parts if p]])


def open_location(
    url: str,
    *,
    endpoint: str = "",
    access_key: str = "",
    secret_key: str = "",
    region: str = "us-east-1",
) -> LakeLocation:
    """Open the file system named by a lake URL (``file://`` or ``s3://``).

    A local root is created if missing; an S3 bucket must exist.
    """
    parsed = parse_backend_url("lake", url)
    if parsed.scheme == "file":
        root = parsed.path.rstrip("/") or "/"
        fs = pfs.LocalFileSystem()
        fs.create_dir(root, recursive=True)
        return LakeLocation(url, fs, root, True)
    bucket = urlparse(url).netloc
    prefix = parsed.path.strip("/")
    options: dict[str, object] = {"region": region}
    if endpoint:
        ep = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
        if not ep.netloc:
            raise ConfigError(
                f"setting TICKWISE_LAKE_ENDPOINT must look like http://host:port, was {endpoint!r}"
            )
        options["endpoint_override"] = ep.netloc
        options["scheme"] = ep.scheme or "http"
    if access_key or secret_key:
        options["access_key"] = access_key
        options["secret_key"] = secret_key
    fs = pfs.S3FileSystem(**options, connect_timeout=5, request_timeout=30)
    try:
        info = fs.get_file_info(bucket)
    except OSError as exc:
        raise BackendError(f"lake {url} is unreachable at endpoint {endpoint or 'AWS'}: {exc}") from None
    if info.type == pfs.FileType.NotFound:
        raise BackendError(f"lake bucket {bucket!r} must exist at endpoint {endpoint or 'AWS'}, was missing")
    root = f"{bucket}/{prefix}" if prefix else bucket
    return LakeLocation(url, fs, root, False)
