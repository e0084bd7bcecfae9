"""Model checkpoints on disk: the cache folder, downloads and hash verification.

A registry model (see :mod:`napari_promptseg.core.models.registry`) is one file in :func:`cache_dir`,
named after :attr:`ModelSpec.filename`. The rules:

* A file already in the cache is used as it is, after its hash has been checked **once**;
  the check is remembered in a small sidecar file (``<filename>.verified.json``) keyed on
  the file's size and modification time, so a multi-GB checkpoint is not re-hashed on
  every start, and replacing or touching the file triggers a new check.
* A missing file is downloaded with pooch: it streams into a temporary file *in the cache
  folder*, the hash is checked, and only a verified file is renamed to its final name. A
  failed, corrupted or cancelled download leaves nothing behind under the final name.
* Offline (``offline=True``, ``NAPARI_PROMPTSEG_OFFLINE=1``, or the network failing), the
  error says exactly which file to download from where and where to put it.

Environment variables: ``NAPARI_PROMPTSEG_CACHE`` (the folder holding the checkpoints),
``NAPARI_PROMPTSEG_MIRROR`` (a base URL that serves the files under their ``filename``, for
sites behind a firewall; hashes are still checked) and ``NAPARI_PROMPTSEG_OFFLINE``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import CheckpointNotAvailable, ModelError
from ..user_folders import user_folder

if TYPE_CHECKING:
    from .spec import ModelSpec

CACHE_ENV = "NAPARI_PROMPTSEG_CACHE"
MIRROR_ENV = "NAPARI_PROMPTSEG_MIRROR"
OFFLINE_ENV = "NAPARI_PROMPTSEG_OFFLINE"
SIDECAR_SUFFIX = ".verified.json"

#: Hash algorithms a :class:`ModelSpec` may use (all understood by pooch; the ``xxh*`` ones
#: need the optional ``xxhash`` package).
HASH_ALGORITHMS = ("sha256", "sha512", "sha1", "md5", "xxh128", "xxh64", "xxh3_128", "xxh3_64")

#: ``progress`` callback: ``(bytes_done, bytes_total)``; ``bytes_total`` is 0 when unknown.
ByteProgress = Callable[[int, int], None]

_CHUNK = 1 << 20  # 1 MiB: pooch's default (1 KiB) costs a Python call per KiB of a GB file
_TIMEOUT = (15, 60)  # seconds to connect, seconds of silence while reading

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Return the folder holding downloaded checkpoints (it may not exist yet).

    ``$NAPARI_PROMPTSEG_CACHE`` if set, else the per-user cache folder
    (``platformdirs.user_cache_dir("napari-promptseg") / "models"``, e.g.
    ``~/.cache/napari-promptseg/models`` on Linux).
    """
    return user_folder(CACHE_ENV, "cache", "models")


def spec_path(spec: ModelSpec) -> Path:
    """Where ``spec``'s checkpoint lives (or will live): the cache, or the spec's own folder."""
    return (spec.folder if spec.folder is not None else cache_dir()) / spec.filename


def is_spec_cached(spec: ModelSpec) -> bool:
    """Whether ``spec``'s file is in the cache with the right size (no hashing: cheap)."""
    path = spec_path(spec)
    try:
        size = path.stat().st_size
    except OSError:
        return False
    return path.is_file() and (spec.size_bytes is None or size == spec.size_bytes)


def resolve_url(spec: ModelSpec, url: str | None = None) -> str:
    """The URL to download ``spec`` from: ``url``, else the mirror, else ``spec.url``."""
    if url is None:
        mirror = os.environ.get(MIRROR_ENV)
        url = f"{mirror.rstrip('/')}/{spec.filename}" if mirror else spec.url
    if urlsplit(url).scheme not in ("http", "https"):
        raise ModelError(
            f"cannot download model {spec.name!r} from {url!r}: only http(s) URLs work"
        )
    return url


def split_hash(known_hash: str) -> tuple[str, str]:
    """``"sha256:ABC"`` -> ``("sha256", "abc")``."""
    algorithm, _, digest = known_hash.partition(":")
    return algorithm.lower(), digest.lower()


def new_hasher(algorithm: str, *, model: str | None = None) -> Any:
    """A hashlib-style object for ``algorithm``; ``ModelError`` if it needs a missing package."""
    if algorithm.startswith("xxh"):
        try:
            import xxhash
        except ImportError:
            what = f"model {model!r}" if model else "this file"
            raise ModelError(
                f"{what} is verified with an {algorithm} hash (the only hash its authors "
                "publish), which needs the 'xxhash' package: pip install xxhash"
            ) from None
        return getattr(xxhash, algorithm)()
    return hashlib.new(algorithm)


def file_hash(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hash a file in 1 MiB chunks; returns ``"<algorithm>:<hex digest>"``."""
    hasher = new_hasher(algorithm)
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            hasher.update(chunk)
    return f"{algorithm}:{hasher.hexdigest()}"


def fetch_spec(
    spec: ModelSpec,
    *,
    progress: bool | ByteProgress = True,
    offline: bool = False,
    url: str | None = None,
) -> Path:
    """Return the path of ``spec``'s verified checkpoint, downloading it if needed.

    See :func:`napari_promptseg.core.models.registry.fetch_checkpoint`, the public entry point.
    """
    if spec.folder is not None:
        return _local_spec_file(spec)
    folder = cache_dir()
    path = folder / spec.filename
    offline = offline or _env_flag(OFFLINE_ENV)

    if path.is_file():
        problem = _check_cached(spec, path)
        if problem is None:
            return path
        source = resolve_url(spec, url)
        if offline:
            raise CheckpointNotAvailable(_manual_install_message(spec, source, folder, problem))
        log.warning("%s; downloading it again from %s", problem, source)
        _remove(path)
    else:
        source = resolve_url(spec, url)
        if offline:
            reason = "it is not downloaded yet and offline mode is on"
            raise CheckpointNotAvailable(_manual_install_message(spec, source, folder, reason))

    _download(spec, source, folder, progress)
    _remember_verified(path, spec.hash)
    return path


def _local_spec_file(spec: ModelSpec) -> Path:
    """The verified file of a model that is never downloaded (shipped, or finetuned here)."""
    path = spec_path(spec)
    if not path.is_file():
        raise CheckpointNotAvailable(
            f"model {spec.name!r} is not available: its file {path} is missing. It is never "
            "downloaded (it ships with napari-promptseg or was finetuned on this computer); "
            "reinstall the package, or finetune the model again."
        )
    # files inside the installed package are hashed each time (a few MB): no sidecar there
    remember = _PACKAGE_ROOT not in path.resolve().parents
    problem = _check_cached(spec, path, remember=remember)
    if problem is not None:
        raise ModelError(
            f"model {spec.name!r} cannot be used: {problem}. The file was changed or damaged "
            "after it was made; it is not downloaded again."
        )
    return path


_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # .../napari_promptseg


# --- cached files ----------------------------------------------------------------------


def _check_cached(spec: ModelSpec, path: Path, *, remember: bool = True) -> str | None:
    """None if ``path`` holds ``spec``'s file, else a sentence saying what is wrong."""
    size = path.stat().st_size
    if spec.size_bytes is not None and size != spec.size_bytes:
        return (
            f"the cached file {path} has {size} bytes instead of {spec.size_bytes} "
            "(an incomplete copy or a different file)"
        )
    if _is_verified(path, spec.hash):
        return None
    algorithm, _ = split_hash(spec.hash)
    new_hasher(algorithm, model=spec.name)  # a clear error if xxhash is missing
    log.info("Checking the hash of %s (once; the result is remembered)", path)
    actual = file_hash(path, algorithm)
    if actual == spec.hash.lower():
        if remember:
            _remember_verified(path, spec.hash)
        return None
    return f"the cached file {path} has hash {actual}, expected {spec.hash}"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _stat_record(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _is_verified(path: Path, known_hash: str) -> bool:
    try:
        record = json.loads(_sidecar(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return record == {"hash": known_hash.lower(), **_stat_record(path)}


def _remember_verified(path: Path, known_hash: str) -> None:
    record = {"hash": known_hash.lower(), **_stat_record(path)}
    try:
        _sidecar(path).write_text(json.dumps(record), encoding="utf-8")
    except OSError as exc:  # a read-only cache still works; it is just re-hashed next time
        log.debug("cannot record the verification of %s: %s", path, exc)


def _remove(path: Path) -> None:
    for stale in (path, _sidecar(path)):
        try:
            stale.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ModelError(f"cannot replace the bad cached file {stale}: {exc}") from exc


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _manual_install_message(spec: ModelSpec, url: str, folder: Path, reason: str) -> str:
    return (
        f"Model {spec.name!r} is not available: {reason}. To install it by hand, download "
        f"{url} and save it as {folder / spec.filename} (file name {spec.filename!r} in the "
        f"folder {folder}; set the {CACHE_ENV} environment variable to use another folder)."
    )


# --- downloading -----------------------------------------------------------------------


def _download(spec: ModelSpec, url: str, folder: Path, progress: bool | ByteProgress) -> None:
    algorithm, _ = split_hash(spec.hash)
    new_hasher(algorithm, model=spec.name)  # fail before downloading GBs we cannot verify

    import pooch
    import requests

    downloader = _VerifyingDownloader(spec, progress)
    try:
        # pooch streams into a temporary file in `folder`, checks the hash again and only
        # then renames it to `filename`; on any error the temporary file is deleted.
        pooch.retrieve(
            url, known_hash=spec.hash, fname=spec.filename, path=folder, downloader=downloader
        )
    except ModelError:
        raise
    except requests.exceptions.RequestException as exc:  # before OSError: it subclasses it
        reason = f"downloading it failed ({_network_reason(exc)})"
        raise CheckpointNotAvailable(_manual_install_message(spec, url, folder, reason)) from exc
    except ValueError as exc:  # pooch's own hash check (ours runs first, so unlikely)
        raise ModelError(f"download of model {spec.name!r} from {url} failed: {exc}") from exc
    except OSError as exc:
        raise ModelError(
            f"cannot write model {spec.name!r} into {folder}: {exc.strerror or exc}. "
            f"Free some space or set {CACHE_ENV} to a writable folder."
        ) from exc


def _network_reason(exc: Exception) -> str:
    import requests

    response = getattr(exc, "response", None)
    if isinstance(exc, requests.exceptions.HTTPError) and response is not None:
        return f"the server answered HTTP {response.status_code} {response.reason}"
    if isinstance(exc, requests.exceptions.Timeout):
        return "the connection timed out"
    if isinstance(exc, requests.exceptions.ConnectionError):
        host = urlsplit(str(getattr(exc.request, "url", "") or "")).netloc
        return f"cannot connect to {host or 'the server'}; is the computer offline?"
    return f"{type(exc).__name__}: {exc}"


class _VerifyingDownloader:
    """A pooch downloader that hashes while streaming and reports progress in bytes.

    Knowing the actual hash lets the mismatch error name both hashes. Raising here (or from
    the progress callback, e.g. to cancel) propagates through pooch, which deletes the
    temporary file.
    """

    def __init__(self, spec: ModelSpec, progress: bool | ByteProgress) -> None:
        self.spec = spec
        self.progress = progress

    def __call__(self, url: str, output_file: str, pooch_instance: Any) -> None:
        from pooch import HTTPDownloader

        algorithm, _ = split_hash(self.spec.hash)
        hasher = new_hasher(algorithm, model=self.spec.name)
        bar: Any = False
        counter = None
        if callable(self.progress):
            counter = bar = _CallbackProgress(self.progress, self.spec.size_bytes or 0)
        elif self.progress:
            bar = True  # pooch's tqdm bar
        with open(output_file, "w+b") as stream:
            sink = _HashingWriter(stream, hasher, counter)
            HTTPDownloader(progressbar=bar, chunk_size=_CHUNK, timeout=_TIMEOUT)(
                url, sink, pooch_instance
            )
        actual = f"{algorithm}:{hasher.hexdigest()}"
        if actual != self.spec.hash.lower():
            raise ModelError(
                f"the file downloaded from {url} for model {self.spec.name!r} has hash {actual}, "
                f"expected {self.spec.hash}. It was discarded, nothing was added to the cache. "
                "The download may have been corrupted (try again) or the file on the server "
                "has changed."
            )


class _HashingWriter:
    """File-like sink for pooch's HTTPDownloader: writes, hashes and counts the bytes."""

    def __init__(self, stream: Any, hasher: Any, counter: _CallbackProgress | None) -> None:
        self.stream = stream
        self.hasher = hasher
        self.counter = counter

    def write(self, data: bytes) -> int:
        self.stream.write(data)
        self.hasher.update(data)
        if self.counter is not None:
            self.counter.advance(len(data))
        return len(data)

    def flush(self) -> None:
        self.stream.flush()


class _CallbackProgress:
    """Adapts a ``(done, total)`` callback to the progress-bar interface pooch drives.

    Pooch sets ``total`` from the Content-Length header and calls ``update`` with the chunk
    size (not the bytes received), so exact counts come from :class:`_HashingWriter` instead.
    """

    def __init__(self, callback: ByteProgress, expected_total: int) -> None:
        self.callback = callback
        self._total = expected_total
        self.done = 0

    @property
    def total(self) -> int:
        return self._total

    @total.setter
    def total(self, value: int) -> None:
        if value:  # 0 means the server sent no Content-Length: keep the registry's size
            self._total = int(value)

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        self.callback(self.done, self._total)

    def update(self, _nbytes: int) -> None:
        pass

    def reset(self) -> None:
        pass

    def close(self) -> None:
        self.callback(self.done, self._total or self.done)
