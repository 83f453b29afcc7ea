"""``manage.py fileshare_reconcile``: make storage and the file index agree again.

Deletes orphan blobs (no index row, older than ``--grace`` seconds), index rows
whose blob is missing and the folders of clients that are gone, and on S3 aborts
multipart uploads left unfinished; ``--dry-run`` only reports. Safe to run while
the server serves (``fileshare.store.reconcile``; docs/storage.md).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from fileshare.store.reconcile import DEFAULT_GRACE, reconcile


class Command(BaseCommand):
    help = "Compare file storage with the file index; delete orphan blobs, dangling rows and gone folders."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="report what would be done; change nothing")
        parser.add_argument(
            "--grace",
            type=float,
            default=DEFAULT_GRACE.total_seconds(),
            help="keep unindexed blobs younger than this many seconds, which may be uploads "
            f"in progress (default {DEFAULT_GRACE.total_seconds():.0f})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["grace"] < 0:
            raise CommandError("--grace must not be negative")
        report = reconcile(
            dry_run=options["dry_run"],
            grace=timedelta(seconds=options["grace"]),
            log=self.stdout.write,
        )
        verb = "would delete" if report.dry_run else "deleted"
        blobs_in_folders = sum(report.gone_folders.values())
        summary = (
            f"{report.blobs_seen} blobs checked; {verb} {len(report.orphan_blobs)} orphan blobs, "
            f"{len(report.dangling_rows)} index rows without a blob and {len(report.gone_folders)} folders "
            f"of gone clients ({blobs_in_folders} blobs); {'would abort' if report.dry_run else 'aborted'} "
            f"{len(report.unfinished_uploads)} unfinished uploads; "
            f"{'would compute' if report.dry_run else 'computed'} {len(report.checksums_filled)} missing checksums; "
            f"kept {len(report.recent_orphans)} recent unindexed blobs"
        )
        self.stdout.write(self.style.SUCCESS(summary) if report.clean else self.style.WARNING(summary))
