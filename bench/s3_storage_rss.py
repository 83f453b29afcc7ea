"""Peak RSS of the storage layer alone moving one large generated file each way.

    FILESHARE_S3_BUCKET=... FILESHARE_S3_ENDPOINT_URL=... python bench/s3_storage_rss.py [--size-mib 1024]

The storage backend is the one ``concierge_site.settings`` selects from the
environment (``FILESHARE_S3_*``; without ``FILESHARE_S3_BUCKET``, local disk under a
temporary ``CONCIERGE_DATA_DIR``), but Django is configured with that ``STORAGES``
entry only, no apps and no ``django.setup()``: the figure is the storage layer's
(Python, Django's settings, boto3 and its S3 model: about 62 MiB before any
transfer), not a whole server's. The script writes a generated stream
through ``fileshare.store.storage.save_blob`` (a non-seekable ``CountingReader``, as an
upload is), reads it back through ``open_blob`` in ``FILESHARE_CHUNK_SIZE``
pieces, checks the SHA-256 both ways, deletes the blob and prints one JSON object::

    {"backend", "size_bytes", "part_size", "upload_concurrency",
     "baseline_rss_mib", "upload": {"seconds", "mib_per_s", "peak_rss_mib"},
     "download": {...}, "peak_rss_mib"}

Peaks are the kernel's high-water mark of this process (``VmHWM``, threads
included), so the download's peak also covers the upload's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MIB = 1024 * 1024


class Generated:
    """A non-seekable source of ``size`` random bytes, read like a request body.

    Each ``read(n)`` is one ``os.urandom`` call, one allocation of ``n`` bytes, as a
    file's ``read(n)`` is: the generator adds nothing to the peak it measures. The
    data never repeats, so a part written twice, dropped or out of order changes
    the SHA-256; the download is checked against the one the upload computed.
    """

    def __init__(self, size: int) -> None:
        self.remaining = size

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = 8 * MIB
        n = min(n, self.remaining)
        self.remaining -= n
        return os.urandom(n)


def peak_rss_mib() -> float:
    """This process's peak resident set so far, in MiB.

    Linux's ``VmHWM``, the high-water mark of this process image. Not
    ``ru_maxrss``: Linux keeps that across ``execve``, so a script started by a
    big parent (pytest) would report the parent's size at fork.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=float, default=1024, help="size of the generated file (default 1024)")
    args = parser.parse_args()
    size = int(args.size_mib * MIB)

    os.environ.setdefault("CONCIERGE_DATA_DIR", tempfile.mkdtemp(prefix="s3-storage-rss-"))
    from django.conf import settings

    from concierge_site import settings as site  # reads FILESHARE_S3_* from the environment

    settings.configure(
        STORAGES={"fileshare": site.STORAGES["fileshare"]},
        USE_TZ=True,
        FILESHARE_CHUNK_SIZE=getattr(site, "FILESHARE_CHUNK_SIZE", 256 * 1024),
    )
    # No django.setup(): the storage layer needs no app registry, and setup's
    # logging configuration alone imports some 10 MiB of views and templates.
    from fileshare import conf
    from fileshare.store import storage

    backend = storage.get_storage()
    if hasattr(backend, "connection"):
        backend.connection  # noqa: B018 (the boto3 client and its service model count as baseline)
    baseline = peak_rss_mib()

    name = f"bench.{uuid.uuid4().hex[:16]}/{uuid.uuid4().hex}.bin"
    reader = storage.CountingReader(Generated(size), limit=size)
    started = time.monotonic()
    storage.save_blob(name, reader)
    upload_seconds = time.monotonic() - started
    upload_peak = peak_rss_mib()
    want = reader.sha256.hexdigest()
    if reader.count != size:
        raise SystemExit(f"upload read {reader.count} bytes, not {size}")

    digest = hashlib.sha256()
    got = 0
    started = time.monotonic()
    handle = storage.open_blob(name)
    try:
        while chunk := handle.read(conf.chunk_size()):
            digest.update(chunk)
            got += len(chunk)
    finally:
        handle.close()
    download_seconds = time.monotonic() - started
    download_peak = peak_rss_mib()
    storage.delete_blob(name)
    if got != size or digest.hexdigest() != want:
        raise SystemExit(f"download gave {got} bytes, sha256 {digest.hexdigest()}; wanted {size}, {want}")

    def rate(seconds: float) -> float:
        return round(size / MIB / seconds, 1) if seconds else 0.0

    print(
        json.dumps(
            {
                "backend": f"{type(backend).__module__}.{type(backend).__name__}",
                "size_bytes": size,
                "part_size": getattr(backend, "part_size", None),
                "upload_concurrency": getattr(backend, "upload_concurrency", None),
                "baseline_rss_mib": round(baseline, 1),
                "upload": {
                    "seconds": round(upload_seconds, 2),
                    "mib_per_s": rate(upload_seconds),
                    "peak_rss_mib": round(upload_peak, 1),
                },
                "download": {
                    "seconds": round(download_seconds, 2),
                    "mib_per_s": rate(download_seconds),
                    "peak_rss_mib": round(download_peak, 1),
                },
                "peak_rss_mib": round(max(upload_peak, download_peak), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
