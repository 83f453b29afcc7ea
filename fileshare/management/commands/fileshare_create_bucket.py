"""``manage.py fileshare_create_bucket``: make the storage for client files exist.

The concierge never creates its S3 bucket while serving (``runconcierge``'s self-check
and ``/readyz`` only look for it): creating buckets is an operator's decision, and the
identity the server runs as should not need ``s3:CreateBucket``. This command does it
once, with whatever credentials the settings name: it creates the bucket of the
``fileshare`` storage alias when it is missing (in the configured region), or, for a
local-disk storage, its folder. It changes nothing that exists; run it as often as you
like (docs/storage.md).
"""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from fileshare.observe import health
from fileshare.store import storage


def bucket_exists(backend: Any) -> bool:
    """HeadBucket: True if the bucket exists and is ours to use, False if it does not exist."""
    from botocore.exceptions import ClientError

    client = backend.connection.meta.client
    try:
        client.head_bucket(Bucket=backend.bucket_name)
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) in {"404", "NoSuchBucket", "NotFound"}:
            return False
        raise CommandError(f"cannot use the bucket {backend.bucket_name!r}: {exc}") from None
    return True


def create_bucket(backend: Any) -> None:
    """CreateBucket in the storage's region (us-east-1 takes no location constraint)."""
    client = backend.connection.meta.client
    region = client.meta.region_name
    arguments: dict[str, Any] = {"Bucket": backend.bucket_name}
    if region and region != "us-east-1":
        arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
    client.create_bucket(**arguments)


class Command(BaseCommand):
    help = "Create the S3 bucket (or the local folder) of the client-file storage when it is missing."

    def handle(self, *args: Any, **options: Any) -> None:
        backend = storage.get_storage()
        kind = health.storage_backend()
        if kind == "s3":
            if bucket_exists(backend):
                self.stdout.write(f"The bucket {backend.bucket_name!r} exists; nothing to do.")
                return
            try:
                create_bucket(backend)
            except Exception as exc:
                raise CommandError(f"cannot create the bucket {backend.bucket_name!r}: {exc}") from None
            self.stdout.write(f"Created the bucket {backend.bucket_name!r}.")
        elif kind == "filesystem":
            location = str(backend.location)
            existed = os.path.isdir(location)
            try:
                os.makedirs(location, exist_ok=True)
            except OSError as exc:
                raise CommandError(f"cannot create the storage folder {location}: {exc}") from None
            self.stdout.write(f"The storage folder {location} {'exists' if existed else 'was created'}.")
        else:
            raise CommandError(f"the {kind} storage is neither S3 nor local disk: create it with its own tools")
