"""The exportconfig command: write the stored configuration as a YAML file for applyconfig."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from routing.declarative import export_configuration


class Command(BaseCommand):
    help = (
        "Print every upstream, API permission, role and route in the YAML format of applyconfig, "
        "sorted by name. Applying the output to the same database changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--output", "-o", metavar="FILE", help="Write the YAML to FILE instead of standard output."
        )

    def handle(self, *args, **options):
        text = export_configuration()
        output = options["output"]
        if not output:
            self.stdout.write(text, ending="")
            return
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot write the configuration to {output}: {exc}") from exc
        if options["verbosity"] >= 1:
            self.stdout.write(f"Wrote the configuration to {output}.")
