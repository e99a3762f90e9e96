"""A Django form generated from a configuration schema, for editing in the admin.

Each leaf of the schema's (nested) ``properties`` becomes one field, named by its path
(``values__db__port``, labelled ``db.port``); secrets are password inputs that show the mask;
what the schema does not describe (arrays, free objects, unknown keys) is edited as JSON.
The form checks types only: the real validation is ``configs.publish``, whose per-field
errors are put back on the fields they belong to.
"""

from django import forms

SEP = "__"
EXTRA = "extra_values"


def field_name(path) -> str:
    return SEP.join(["values", *map(str, path)])


def _leaves(schema: dict, prefix=()):
    for name, sub in (schema.get("properties") or {}).items():
        path = (*prefix, name)
        if isinstance(sub, dict) and sub.get("properties") and not sub.get("writeOnly"):
            yield from _leaves(sub, path)
        else:
            yield path, sub if isinstance(sub, dict) else {}


def _required(schema: dict, path) -> bool:
    node = schema
    for part in path[:-1]:
        node = (node.get("properties") or {}).get(part, {})
    return path[-1] in (node.get("required") or [])


def _form_field(spec: dict, required: bool, label: str) -> forms.Field:
    kind = spec.get("type")
    hints = [spec.get("description", "")]
    if "default" in spec and not spec.get("writeOnly"):
        hints.append(f"Default: {spec['default']!r} (leave empty to use it).")
    # A required field with a default is satisfied by the default.
    required = required and "default" not in spec
    common = {"required": required, "label": label, "help_text": " ".join(h for h in hints if h)}
    if spec.get("writeOnly"):
        return forms.CharField(widget=forms.PasswordInput(render_value=True), **common)
    if "enum" in spec:
        choices = [(str(v), str(v)) for v in spec["enum"]]
        return forms.TypedChoiceField(
            choices=([] if required else [("", "—")]) + choices,
            coerce=lambda v, values=spec["enum"]: next(x for x in values if str(x) == v),
            empty_value=None,
            **common,
        )
    if kind == "integer":
        return forms.IntegerField(
            min_value=spec.get("minimum"), max_value=spec.get("maximum"), **common
        )
    if kind == "number":
        return forms.FloatField(
            min_value=spec.get("minimum"), max_value=spec.get("maximum"), **common
        )
    if kind == "boolean":
        return forms.TypedChoiceField(
            choices=[("", "—"), ("true", "Yes"), ("false", "No")],
            coerce=lambda v: v == "true",
            empty_value=None,
            **common,
        )
    if kind == "string":
        return forms.CharField(
            min_length=spec.get("minLength"),
            max_length=spec.get("maxLength"),
            strip=False,
            **common,
        )
    return forms.JSONField(widget=forms.Textarea(attrs={"rows": 3}), **common)


class ConfigForm(forms.Form):
    base_version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)
    comment = forms.CharField(max_length=500, required=False)

    def __init__(self, *args, schema: dict | None, current: dict, base_version: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.schema = schema or {}
        self.paths = []
        self.fields["base_version"].initial = base_version
        described = set()
        for path, spec in _leaves(self.schema):
            name = field_name(path)
            self.paths.append((name, path))
            described.add(path[0])
            self.fields[name] = _form_field(spec, _required(self.schema, path), ".".join(path))
            value = _get(current, path)
            if value is not None:
                self.fields[name].initial = value
        extra = {k: v for k, v in current.items() if k not in described}
        self.fields[EXTRA] = forms.JSONField(
            required=False,
            initial=extra or None,
            label="Other values (JSON object)",
            widget=forms.Textarea(attrs={"rows": 4}),
            help_text="Keys the schema does not describe." if schema else "The whole document.",
        )
        self.order_fields([n for n, _ in self.paths] + [EXTRA, "comment"])

    def clean_extra_values(self):
        value = self.cleaned_data[EXTRA]
        if value is not None and not isinstance(value, dict):
            raise forms.ValidationError("must be a JSON object")
        return value or {}

    def values(self) -> dict:
        document = dict(self.cleaned_data[EXTRA])
        for name, path in self.paths:
            value = self.cleaned_data.get(name)
            if value is None or value == "":
                continue  # left empty: the schema's default applies
            _set(document, path, value)
        return document

    def add_publish_errors(self, fields: dict[str, str]) -> None:
        """Put ``values.db.port``-style errors on the field they belong to."""
        by_path = {".".join(["values", *p]): n for n, p in self.paths}
        for where, reason in fields.items():
            name = by_path.get(where, EXTRA) if where.startswith("values") else None
            self.add_error(name, f"{where}: {reason}")


def _get(document, path):
    for part in path:
        if not isinstance(document, dict) or part not in document:
            return None
        document = document[part]
    return document


def _set(document: dict, path, value) -> None:
    for part in path[:-1]:
        document = document.setdefault(part, {})
    document[path[-1]] = value
