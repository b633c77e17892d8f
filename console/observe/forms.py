"""The route tester's form."""

from django import forms
from django.contrib.admin.widgets import AdminRadioSelect

from accounts.models import ApiPermission, Role
from console.observe.tester import CALLER_CLAIMS, CALLER_NONE, CALLER_TOKEN, Caller
from routing.patterns import HTTP_METHODS
from routing.paths import MAX_PATH_LENGTH

CALLER_CHOICES = [
    (CALLER_CLAIMS, "a valid access token with the roles and permissions below"),
    (CALLER_TOKEN, "the access token below"),
    (CALLER_NONE, "no access token"),
]


class RouteTestForm(forms.Form):
    method = forms.ChoiceField(choices=[(method, method) for method in HTTP_METHODS], initial="GET")
    host = forms.CharField(
        max_length=255,
        help_text="The Host header that the client sends, such as api.example.com; a port is ignored.",
    )
    target = forms.CharField(
        label="Path",
        # A query may follow the path.
        max_length=2 * MAX_PATH_LENGTH,
        strip=False,
        help_text="The path and query exactly as the client sends them, such as /api/orders/7?expand=items.",
        widget=forms.TextInput(attrs={"size": 80, "spellcheck": "false"}),
    )
    caller = forms.ChoiceField(
        label="Caller",
        choices=CALLER_CHOICES,
        initial=CALLER_CLAIMS,
        widget=AdminRadioSelect(attrs={"class": "radiolist"}),
    )
    roles = forms.MultipleChoiceField(
        required=False,
        help_text="Roles that the token carries. With no roles and no permissions on a public route, "
        "the caller is anonymous.",
    )
    permissions = forms.MultipleChoiceField(required=False, help_text="API permissions that the token carries.")
    token = forms.CharField(
        label="Access token",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80, "spellcheck": "false", "autocomplete": "off"}),
        help_text="An access token from /auth/token, without the word Bearer. It is verified as the proxy verifies it.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["roles"].choices = [(name, name) for name in Role.objects.values_list("name", flat=True)]
        self.fields["permissions"].choices = [
            (codename, codename) for codename in ApiPermission.objects.values_list("codename", flat=True)
        ]
        for name in ("roles", "permissions"):
            self.fields[name].widget.attrs["size"] = min(max(len(self.fields[name].choices), 3), 10)

    def clean_target(self):
        target = self.cleaned_data["target"]
        if not target.startswith("/") and "://" not in target:
            raise forms.ValidationError(
                "Enter the path as the client sends it, starting with /, such as /api/orders/7.",
                code="invalid_target",
            )
        return target

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("caller") == CALLER_TOKEN and not cleaned.get("token"):
            self.add_error("token", "Paste an access token, or choose another caller.")
        return cleaned

    def caller_value(self):
        """Return the Caller that the valid form describes."""
        kind = self.cleaned_data["caller"]
        if kind == CALLER_TOKEN:
            return Caller(kind, token=self.cleaned_data["token"])
        if kind == CALLER_CLAIMS:
            return Caller(
                kind,
                roles=frozenset(self.cleaned_data["roles"]),
                permissions=frozenset(self.cleaned_data["permissions"]),
            )
        return Caller(kind)
