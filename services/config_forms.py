"""A Django form generated from a configuration schema, for editing in the admin.

Each leaf of the schema's (nested) ``properties`` becomes one field, named by its path
(``values__db__port``, labelled ``db.port``); secrets are password inputs that show the mask;
what the schema does not describe (arrays, free objects, unions, unknown keys -- nested ones
too) and any stored value its widget could not show exactly (a string with a line break, a
value off its declared type) is edited as JSON.

The form is a round trip. Every field shows the stored value as text, and saving applies
only the fields whose text now reads as a different value, on top of the version the form
was opened on: a field nobody touched is never read back from its widget, so no widget can
rewrite what it cannot show, and a form saved unchanged changes nothing. An emptied field
falls back to the schema's default (a string without a default becomes ``""``). The form
checks types only: the real validation is ``configs.publish``, whose per-field errors are put
back on the fields they belong to.
"""

import copy
import json
import re

from django import forms

SEP = "__"
EXTRA = "extra_values"
UNSET = object()  # an emptied field: the key is left out (the schema's default applies)
# What an <input> cannot carry: browsers strip line breaks from its value, and NUL never
# survives a form post.
_NOT_ONE_LINE = re.compile(r"[\r\n\x00]")
_INTEGER = re.compile(r"[+-]?\d+")


def field_name(path) -> str:
    """``values__db__port`` for the leaf ``db.port``: one name per path, whatever the schema
    calls its properties. A name that could blur the joins (``a__b`` beside an object ``a``
    holding ``b``, a leading or trailing ``_``, the empty name) is written as ``~`` and its
    UTF-8 in hex, which holds no ``_``; so no two leaves share a field."""
    return SEP.join(["values", *map(_part, path)])


def _part(name) -> str:
    name = str(name)
    if name and SEP not in name and name[0] not in "_~" and not name.endswith("_"):
        return name
    return "~" + name.encode().hex()


def _canonical(value) -> str:
    """Equal for equal JSON values (``3`` and ``3.0`` differ: the stored text would)."""
    return "\0unset" if value is UNSET else json.dumps(value, sort_keys=True, ensure_ascii=False)


# --- Leaf fields: text in, a JSON value (or UNSET) out ----------------------------------------


class LeafField(forms.Field):
    """A field whose initial is the stored value's text and whose cleaned value is the
    JSON value that text reads as. ``render`` and ``parse`` are inverse on stored values."""

    def __init__(self, *, default=UNSET, **kwargs):
        self.default = default
        super().__init__(required=False, **kwargs)

    def render(self, value) -> str:
        return str(value)

    def parse(self, text: str):
        raise NotImplementedError

    def to_python(self, value):
        text = "" if value is None else str(value)
        return UNSET if text == "" else self.parse(text)


class TextField(LeafField):
    widget: type[forms.Widget] | forms.Widget = forms.TextInput

    def to_python(self, value):
        text = "" if value is None else str(value)
        if _NOT_ONE_LINE.search(text):
            raise forms.ValidationError("a line break or NUL cannot be entered here; use JSON")
        if text == "":
            return UNSET if self.default is not UNSET else ""
        return text


class SecretField(TextField):
    widget = forms.PasswordInput(render_value=True)

    def __init__(self, *, declared=None, **kwargs):
        self.declared = declared
        super().__init__(**kwargs)

    def to_python(self, value):
        text = super().to_python(value)
        if text is UNSET or text == "" or self.declared in (None, "string"):
            return text
        try:  # a secret number or flag is typed as JSON; anything else is kept as text
            return json.loads(text)
        except ValueError:
            return text


class IntegerLeafField(LeafField):
    widget = forms.NumberInput

    def parse(self, text):
        if not _INTEGER.fullmatch(text.strip()):
            raise forms.ValidationError("Enter a whole number.")
        return int(text)


class NumberLeafField(LeafField):
    widget = forms.NumberInput(attrs={"step": "any"})

    def render(self, value) -> str:
        return repr(value)  # the shortest text that reads back as the same float

    def parse(self, text):
        text = text.strip()
        if _INTEGER.fullmatch(text):
            return int(text)
        try:
            number = float(text)
        except ValueError:
            raise forms.ValidationError("Enter a number.") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise forms.ValidationError("Enter a finite number.")
        return number


class ChoiceLeafField(LeafField):
    """A select whose option values are the choices themselves when all are strings, their
    JSON text otherwise (so ``1``, ``"1"`` and ``true`` stay apart); the empty option leaves
    the key out."""

    def __init__(self, *, options: list[tuple[object, str]], empty_label: str, **kwargs):
        self.as_text = all(isinstance(v, str) and v for v, _ in options)
        self.options = {self.render(v): v for v, _ in options}
        choices = [("", empty_label)] + [(self.render(v), label) for v, label in options]
        super().__init__(widget=forms.Select(choices=choices), **kwargs)

    def render(self, value) -> str:
        return value if self.as_text else _canonical(value)

    def parse(self, text):
        if text not in self.options:
            raise forms.ValidationError("Select one of the choices offered.")
        return self.options[text]


class JsonLeafField(LeafField):
    widget = forms.Textarea(attrs={"rows": 2})

    def render(self, value) -> str:
        return json.dumps(value, ensure_ascii=False)

    def parse(self, text):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"not JSON: {exc}") from None


# --- Which field a leaf gets -----------------------------------------------------------------


def _fits(spec: dict, value) -> bool:
    """Whether the typed widget for ``spec`` shows ``value`` exactly."""
    kind = spec.get("type")
    if "enum" in spec:
        return any(_canonical(value) == _canonical(v) for v in spec["enum"])
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str) and not _NOT_ONE_LINE.search(value)
    return False


def _default_hint(spec: dict) -> str:
    if "default" not in spec or spec.get("writeOnly"):
        return ""
    return f"Default: {json.dumps(spec['default'], ensure_ascii=False)} (empty it to use it)."


def leaf_field(spec: dict, value, present: bool, label: str) -> LeafField:
    default = spec.get("default", UNSET)
    common = {
        "label": label,
        "default": default,
        "help_text": " ".join(h for h in (spec.get("description", ""), _default_hint(spec)) if h),
    }
    if spec.get("writeOnly"):
        return SecretField(declared=spec.get("type"), **common)
    if present and not _fits(spec, value):
        return JsonLeafField(**common)
    empty = "—" if default is UNSET else f"— default ({json.dumps(default, ensure_ascii=False)})"
    if "enum" in spec:
        options = [(v, v if isinstance(v, str) else json.dumps(v)) for v in spec["enum"]]
        return ChoiceLeafField(options=options, empty_label=empty, **common)
    kind = spec.get("type")
    if kind == "boolean":
        return ChoiceLeafField(options=[(True, "Yes"), (False, "No")], empty_label=empty, **common)
    if kind == "integer":
        return IntegerLeafField(**common)
    if kind == "number":
        return NumberLeafField(**common)
    if kind == "string":
        return TextField(**common)
    return JsonLeafField(**common)


# --- The schema's shape over a stored document ------------------------------------------------


def _walk(schema: dict, document, prefix=()):
    """(leaves, extra): the described leaves ``(path, spec, value, present)`` and the
    undescribed part of ``document`` with its nesting. An object is descended into only
    where the stored value is an object too (or absent)."""
    leaves, extra = [], {}
    document = document if isinstance(document, dict) else {}
    properties = schema.get("properties") or {}
    for name, sub in properties.items():
        sub = sub if isinstance(sub, dict) else {}
        path, present = (*prefix, name), name in document
        value = document.get(name)
        nested = sub.get("properties") and not sub.get("writeOnly")
        if nested and (not present or isinstance(value, dict)):
            sub_leaves, sub_extra = _walk(sub, value, path)
            leaves += sub_leaves
            if sub_extra:
                extra[name] = sub_extra
        else:
            leaves.append((path, sub, value, present))
    extra.update({k: v for k, v in document.items() if k not in properties})
    return leaves, extra


def _described(document: dict, node: dict) -> dict:
    """``document`` without its undescribed keys (``node`` is the schema at that level)."""
    properties = node.get("properties") or {}
    kept = {}
    for name, value in document.items():
        if name not in properties:
            continue
        sub = properties[name] if isinstance(properties[name], dict) else {}
        nested = sub.get("properties") and not sub.get("writeOnly")
        kept[name] = _described(value, sub) if nested and isinstance(value, dict) else value
    return kept


def _merge_extra(document: dict, extra: dict, node: dict, prefix=()) -> list[str]:
    """Put the undescribed keys back; returns the described leaves ``extra`` tried to set."""
    properties, clashes = node.get("properties") or {}, []
    for name, value in extra.items():
        if name not in properties:
            document[name] = value
            continue
        sub = properties[name] if isinstance(properties[name], dict) else {}
        target = document.get(name)
        if sub.get("properties") and isinstance(value, dict) and isinstance(target, dict | None):
            document[name] = target if target is not None else {}
            clashes += _merge_extra(document[name], value, sub, (*prefix, name))
        else:
            clashes.append(".".join((*prefix, name)))
    return clashes


# --- The form --------------------------------------------------------------------------------


class ConfigForm(forms.Form):
    base_version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)
    # The schema version the form was drawn from: a post is read against the same fields,
    # even if another schema was stored while the form was open.
    schema_version = forms.IntegerField(widget=forms.HiddenInput, min_value=0, required=False)
    comment = forms.CharField(max_length=500, required=False)

    def __init__(
        self,
        *args,
        schema: dict | None,
        current: dict,
        base_version: int,
        schema_version: int = 0,
        **kwargs,
    ):
        """``current`` is the (masked) document of version ``base_version``: the one shown,
        and the one a save applies its changes to; ``schema`` (version ``schema_version``)
        is the one the form is drawn from."""
        super().__init__(*args, **kwargs)
        self.schema = schema or {}
        self.opened = copy.deepcopy(current)
        self.paths = []
        self.fields["base_version"].initial = base_version
        self.fields["schema_version"].initial = schema_version
        leaves, extra = _walk(self.schema, current)
        for path, spec, value, present in leaves:
            name = field_name(path)
            self.paths.append((name, path))
            field = leaf_field(spec, value, present, ".".join(path))
            field.initial = field.render(value) if present else ""
            self.fields[name] = field
        self.fields[EXTRA] = JsonLeafField(
            initial=json.dumps(extra, indent=2, ensure_ascii=False) if extra else "",
            label="Other values (JSON object)",
            widget=forms.Textarea(attrs={"rows": 4}),
            help_text="Keys the schema does not describe." if schema else "The whole document.",
        )
        self.order_fields([n for n, _ in self.paths] + [EXTRA, "comment"])

    def clean_extra_values(self):
        value = self.cleaned_data[EXTRA]
        if value is UNSET:
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError("must be a JSON object")
        if clashes := _merge_extra({}, value, self.schema):
            raise forms.ValidationError(
                f"{', '.join(clashes)}: described by the schema; edit in its own field"
            )
        return value

    def _changed(self, name: str) -> bool:
        """Whether the field's text now reads as another value than the one it showed (a
        field left out of the post is untouched)."""
        if name not in self.data:
            return False
        field = self.fields[name]
        before = field.clean(field.initial)
        if name == EXTRA and before is UNSET:
            before = {}
        return _canonical(self.cleaned_data[name]) != _canonical(before)

    def changed_paths(self) -> list[str]:
        """The leaves (and ``extra_values``) this save changes; empty: nothing to store."""
        names = [n for n, _ in self.paths if self._changed(n)]
        return names + ([EXTRA] if self._changed(EXTRA) else [])

    def values(self) -> dict:
        """The opened document with the changed fields applied (secrets still masked:
        ``configs.publish`` keeps a stored secret sent back as the mask)."""
        document = copy.deepcopy(self.opened)
        changed = set(self.changed_paths())
        for name, path in self.paths:
            if name in changed:
                _put(document, path, self.cleaned_data[name])
        if EXTRA in changed:
            document = _described(document, self.schema)
            _merge_extra(document, copy.deepcopy(self.cleaned_data[EXTRA]), self.schema)
        return document

    def add_publish_errors(self, fields: dict[str, str]) -> None:
        """Put ``values.db.port``-style errors on the field they belong to."""
        by_path = {".".join(["values", *p]): n for n, p in self.paths}
        for where, reason in fields.items():
            name = by_path.get(where, EXTRA) if where.startswith("values") else None
            self.add_error(name, f"{where}: {reason}")


def _put(document: dict, path, value) -> None:
    """Set the leaf at ``path``, making the objects on the way; UNSET removes it."""
    for part in path[:-1]:
        if value is UNSET and part not in document:
            return
        document = document.setdefault(part, {})
    if value is UNSET:
        document.pop(path[-1], None)
    else:
        document[path[-1]] = value
