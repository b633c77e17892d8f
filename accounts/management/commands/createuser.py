"""The createuser command: create or update a user with roles, API permissions and a password."""

import os
import sys

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import ApiPermission, Role, User

PASSWORD_VARIABLE = "JWTGATE_PASSWORD"


def split_names(value):
    """Return the non-empty names in a comma-separated string, without duplicates, in their order."""
    names = []
    for item in value.split(","):
        name = item.strip()
        if name and name not in names:
            names.append(name)
    return names


class Command(BaseCommand):
    help = (
        "Create a user, or update the user of that name, so that it has exactly the given roles, "
        "API permissions, email and flags. An option left out sets its default: no roles, no "
        "permissions, no email, not staff, not superuser, active. The password comes from the "
        f"environment variable {PASSWORD_VARIABLE} or, with --password-stdin, from the first line "
        "of standard input."
    )

    def add_arguments(self, parser):
        parser.add_argument("username", help="The user's login name.")
        parser.add_argument(
            "--roles", default="", help="Comma-separated role names, such as reader,admin. Each must exist."
        )
        parser.add_argument(
            "--permissions",
            default="",
            help="Comma-separated API permission codenames granted directly, such as orders:read. Each must exist.",
        )
        parser.add_argument("--email", default="", help="The user's email address.")
        parser.add_argument("--staff", action="store_true", help="Allow the user to sign in to the admin console.")
        parser.add_argument(
            "--superuser", action="store_true", help="Give the user every console permission. Implies --staff."
        )
        parser.add_argument(
            "--inactive", action="store_true", help="Create or keep the user inactive: it cannot obtain tokens."
        )
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help=f"Read the password from the first line of standard input instead of {PASSWORD_VARIABLE}.",
        )
        parser.add_argument(
            "--no-validate",
            action="store_true",
            help="Skip Django's password validators (length, common passwords, similarity to the username).",
        )

    def handle(self, *args, **options):
        password = read_password(options["password_stdin"])
        username = User.normalize_username(options["username"])
        role_names = split_names(options["roles"])
        codenames = split_names(options["permissions"])

        with transaction.atomic():
            roles, missing_roles = find_by_name(Role, "name", role_names)
            permissions, missing_permissions = find_by_name(ApiPermission, "codename", codenames)
            unknown = []
            if missing_roles:
                unknown.append(f"unknown roles: {', '.join(missing_roles)}")
            if missing_permissions:
                unknown.append(f"unknown API permissions: {', '.join(missing_permissions)}")
            if unknown:
                raise CommandError(
                    f"Cannot save user {username!r}: {'; '.join(unknown)}. Create them first with "
                    "manage.py applyconfig or in the admin console."
                )

            user = User.objects.filter(username=username).first()
            created = user is None
            if created:
                user = User(username=username)
            user.email = options["email"]
            user.is_superuser = options["superuser"]
            user.is_staff = options["staff"] or options["superuser"]
            user.is_active = not options["inactive"]
            check_user(user, password, validate=not options["no_validate"])
            user.set_password(password)
            user.save()
            user.roles.set(roles)
            user.api_permissions.set(permissions)

        if options["verbosity"] >= 1:
            action = "Created" if created else "Updated"
            self.stdout.write(
                f"{action} user {username} with roles: {', '.join(role_names) or '-'}; "
                f"API permissions: {', '.join(codenames) or '-'}."
            )


def read_password(from_stdin):
    """Return the password from standard input or the environment, or raise CommandError if there is none."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
        source = "standard input"
    else:
        password = os.environ.get(PASSWORD_VARIABLE)
        if password is None:
            raise CommandError(
                f"No password given: set the environment variable {PASSWORD_VARIABLE}, or pass "
                "--password-stdin and write the password as the first line of standard input."
            )
        source = PASSWORD_VARIABLE
    if not password:
        raise CommandError(f"The password from {source} is empty; give a non-empty password.")
    return password


def find_by_name(model, field, names):
    """Return the rows of ``model`` whose ``field`` is in ``names``, and the sorted names not found."""
    rows = list(model.objects.filter(**{f"{field}__in": names}))
    found = {getattr(row, field) for row in rows}
    return rows, sorted(set(names) - found)


def check_user(user, password, validate):
    """Raise CommandError listing every problem with the username, the email or, if ``validate``, the password."""
    problems = []
    try:
        user.full_clean(exclude=["password"], validate_unique=False)
    except ValidationError as exc:
        for field_name, messages in exc.message_dict.items():
            problems.extend(f"{field_name}: {message}" for message in messages)
    if validate:
        try:
            validate_password(password, user=user)
        except ValidationError as exc:
            problems.extend(f"password: {message}" for message in exc.messages)
            problems.append("Choose another password, or pass --no-validate for a demo or test user.")
    if problems:
        details = "\n".join(f"  {problem}" for problem in problems)
        raise CommandError(f"Cannot save user {user.username!r}:\n{details}")
