"""The applyconfig command: make the stored configuration match a YAML file."""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from routing.declarative import ADD, CHANGE, DELETE, ConfigurationError, apply_configuration


class Command(BaseCommand):
    help = (
        "Make upstreams (with their targets), routes (with their role rules), roles and API permissions "
        "match a YAML file. Only entries that differ are written, and an invalid file changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The YAML configuration file, or - for standard input.")
        parser.add_argument(
            "--prune",
            action="store_true",
            help="Also delete the upstreams, routes, roles and API permissions that the file omits.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Print the planned changes and write nothing."
        )

    def handle(self, *args, **options):
        source = options["file"]
        text = read_source(source)
        try:
            result = apply_configuration(
                text, source="standard input" if source == "-" else source,
                prune=options["prune"], dry_run=options["dry_run"],
            )
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from exc

        if options["verbosity"] < 1:
            return
        for change in result.changes:
            self.stdout.write(f"  {change}")
        added, changed, deleted = (result.count(action) for action in (ADD, CHANGE, DELETE))
        if not result.changes:
            self.stdout.write("No changes: the stored configuration already matches the file.")
        elif result.dry_run:
            self.stdout.write(
                f"Dry run: {added} to add, {changed} to change, {deleted} to delete; nothing was written."
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Applied: {added} added, {changed} changed, {deleted} deleted. "
                    f"The configuration version is now {result.version}."
                )
            )


def read_source(source):
    """Return the text of the file ``source``, or of standard input for ``-``, or raise CommandError."""
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"Cannot read the configuration file {source}: {exc}") from exc
