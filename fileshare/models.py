"""The shared state of the concierge: every server process reads and writes these.

A live client, its services and subscriptions, and the index of its files are
rows, not one process's memory, so that names are unique across processes (a
unique constraint settles two IDENTIFYs racing for a name) and a key issued by one
process authorises a request served by another. Server processes hold a lease
(``ServerInstance.heartbeat_at``); a process whose lease lapses is presumed dead
and its clients are removed by another (``fileshare.presence.instance``).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models


class ServerInstance(models.Model):
    """One running server process, alive while its heartbeat is recent."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    hostname = models.CharField(max_length=255)
    pid = models.IntegerField()
    started_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.hostname}:{self.pid}"


class LiveClient(models.Model):
    """A client that has sent IDENTIFY and got HELLO, until it leaves."""

    name = models.CharField(max_length=255, unique=True)
    nickname = models.CharField(max_length=255, null=True, blank=True)
    tags = models.JSONField(default=list)
    version = models.CharField(max_length=64)
    # The secret key (HELLO's uuid) authorises the file API; never shown to others.
    key = models.UUIDField(unique=True, editable=False)
    # The public id other clients see and address.
    public_id = models.UUIDField(unique=True, editable=False)
    channel_name = models.CharField(max_length=255, unique=True)
    # Storage prefix of this session's files: unique per connection, so a name
    # reused after a leave never meets the files of the one before.
    folder = models.CharField(max_length=255, unique=True)
    instance = models.ForeignKey(ServerInstance, on_delete=models.PROTECT, related_name="clients")
    connected_at = models.DateTimeField(auto_now_add=True)
    # Set when the leave sequence starts: the key is refused from that moment.
    left_at = models.DateTimeField(null=True, blank=True)
    # A resumable session (docs/sessions.md): the SHA-256 (hex) of its token, never the token.
    session_hash = models.CharField(max_length=64, null=True, blank=True, editable=False)
    # While its socket is gone and the session is held: when the grace runs out.
    held_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def info(self) -> dict[str, Any]:
        """Client info as PROTOCOL.md defines it (public id, never the key)."""
        return {
            "name": self.name,
            "nickname": self.nickname,
            "uuid": str(self.public_id),
            "tags": list(self.tags),
        }


class Service(models.Model):
    """A pub/sub service owned by one client; deleted when its owner leaves."""

    name = models.CharField(max_length=255, unique=True)
    nickname = models.CharField(max_length=255, null=True, blank=True)
    owner = models.ForeignKey(LiveClient, on_delete=models.CASCADE, related_name="services")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Subscription(models.Model):
    """A client subscribed to a service."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="subscriptions")
    client = models.ForeignKey(LiveClient, on_delete=models.CASCADE, related_name="subscriptions")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["service", "client"], name="fileshare_one_subscription")]
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.client_id} -> {self.service_id}"


class StoredFile(models.Model):
    """The file index: one row per complete, visible file.

    The bytes live in storage under ``blob``, a name unique to this upload; the
    row is written only after the blob is complete, so a half-written upload is
    never listed or served, and a PUT that replaces a file swaps the blob in one
    transaction. ``file_id`` is unique across the server and stays the same while
    a path exists, including across replacements.
    """

    file_id = models.AutoField(primary_key=True)
    owner = models.ForeignKey(LiveClient, on_delete=models.CASCADE, related_name="files")
    path = models.CharField(max_length=1024)
    blob = models.CharField(max_length=1024, unique=True)
    size = models.BigIntegerField()
    content_type = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    modified_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "path"], name="fileshare_one_path_per_owner")]
        ordering = ["owner_id", "path"]

    def __str__(self) -> str:
        return f"{self.owner_id}:{self.path}"

    @property
    def entity_tag(self) -> str | None:
        """The strong ETag, the quoted SHA-256; None while the checksum is computed
        after the answer (``files.fill_checksum``)."""
        return f'"{self.sha256}"' if self.sha256 else None


class ResumableUpload(models.Model):
    """A tus upload (docs/resumable.md): a file arriving in chunks, resumable at ``offset``.

    Each accepted PATCH body is a separate part blob under the owner's folder
    (``<folder>/.parts/<id>/``), so the leave sequence deletes partial uploads with
    the rest of the folder and this row goes by cascade. When the last byte
    arrives the parts are streamed, in order, into a regular file
    (``fileshare.store.files.store``) and deleted; the row stays, ``completed_at`` set,
    until it expires, so that a client resuming a finished upload learns so.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(LiveClient, on_delete=models.CASCADE, related_name="resumable_uploads")
    # The target path inside the owner's folder, already cleaned by fileshare.store.paths.
    path = models.CharField(max_length=1024)
    length = models.BigIntegerField()
    # Bytes received and recorded as parts; the final part is counted only once the
    # file is assembled.
    offset = models.BigIntegerField(default=0)
    # Upload-Metadata as the client sent it, echoed on HEAD.
    metadata = models.TextField(blank=True, default="")
    content_type = models.CharField(max_length=255, blank=True, default="")
    # The server process assembling the file (a ServerInstance id) while it does;
    # a claim whose process lost its lease is stale and may be taken over.
    finishing_by = models.UUIDField(null=True, blank=True)
    finishing_since = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.owner_id}:{self.path} ({self.offset}/{self.length})"


class UploadPart(models.Model):
    """One stored PATCH body of a ResumableUpload: bytes ``[offset, offset + size)``."""

    upload = models.ForeignKey(ResumableUpload, on_delete=models.CASCADE, related_name="parts")
    offset = models.BigIntegerField()
    size = models.BigIntegerField()
    blob = models.CharField(max_length=1024, unique=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["upload", "offset"], name="fileshare_one_part_per_offset")]
        ordering = ["upload_id", "offset"]

    def __str__(self) -> str:
        return f"{self.upload_id}@{self.offset}+{self.size}"
