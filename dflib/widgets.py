"""Notebook forms built from the config dataclasses, so a notebook has settings but no widget code.

The form starts from a config instance and reads back into a new one. A notebook run headless
(papermill, "Run all" before anyone touches a widget) therefore gets exactly the config it passed in.
"""
from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ipywidgets
import traitlets

WIDGET_FOR_TYPE = {
    bool: ipywidgets.Checkbox,
    int: ipywidgets.IntText,
    float: ipywidgets.FloatText,
    str: ipywidgets.Text,
}
# Without it ipywidgets cuts descriptions to a fixed width ("Weight de...").
STYLE = {"description_width": "initial"}


class ConfigForm:
    """A form over one config: ``widget`` to display, ``value()`` for the config it now describes."""

    def __init__(self, config: Any, widgets: dict[str, ipywidgets.ValueWidget], widget: ipywidgets.Widget):
        self.config = config
        self.widgets = widgets  # dotted field name -> its widget
        self.widget = widget

    def value(self) -> Any:
        """A new config of the same class: the form's values, the original's for fields not shown."""
        return _replaced(self.config, {name: w.value for name, w in self.widgets.items()})

    def set(self, **values: Any) -> None:
        """Set widgets by dotted name, e.g. ``form.set(epochs=3, **{"model.dropout": 0.1})``."""
        unknown = set(values) - set(self.widgets)
        if unknown:
            raise KeyError(f"not in this form: {', '.join(sorted(unknown))}; it has {', '.join(self.widgets)}")
        for name, value in values.items():
            self.widgets[name].value = value

    def _ipython_display_(self):
        """Display the form when a cell ends with it, as it would the widget (ipywidgets 7 and 8)."""
        from IPython.display import display

        display(self.widget)


def config_form(
    config: Any,
    fields: Iterable[str] | None = None,
    choices: Mapping[str, Sequence] | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> ConfigForm:
    """Form over ``config``'s fields; nested configs become collapsible sections.

    Names are dotted for nested fields ("model.name"). ``fields`` limits the form (a section name takes
    its whole section); ``choices`` turns a field into a dropdown of those options (values, or
    (label, value) pairs); ``descriptions`` replaces the label derived from the field name.
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"config_form needs a config instance, got {config!r}")
    shown = None if fields is None else set(fields)
    choices, descriptions = dict(choices or {}), dict(descriptions or {})
    leaves, sections = _field_names(config)
    for argument, names, allowed in [
        ("fields", shown or set(), {*leaves, *sections}),
        ("choices", set(choices), set(leaves)),
        ("descriptions", set(descriptions), {*leaves, *sections}),
    ]:
        if names - allowed:
            raise ValueError(
                f"{argument}: no field {', '.join(sorted(names - allowed))} in {type(config).__name__}"
            )
    widgets = {
        name: _widget(config, name, choices.get(name), descriptions.get(name))
        for name in leaves
        if shown is None or any(name == s or name.startswith(s + ".") for s in shown)
    }
    return ConfigForm(config, widgets, _container(config, widgets, descriptions))


def _field_names(config: Any, prefix: str = "") -> tuple[list[str], list[str]]:
    """Dotted names of the scalar fields and of the nested configs, in declaration order."""
    leaves, sections = [], []
    for f in dataclasses.fields(config):
        name = prefix + f.name
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            sections.append(name)
            nested_leaves, nested_sections = _field_names(value, name + ".")
            leaves += nested_leaves
            sections += nested_sections
        else:
            leaves.append(name)
    return leaves, sections


def _widget(config: Any, name: str, options: Sequence | None, description: str | None) -> ipywidgets.ValueWidget:
    *parents, leaf = name.split(".")
    owner = config
    for parent in parents:
        owner = getattr(owner, parent)
    value = getattr(owner, leaf)
    label = description or _readable(leaf)
    if options is not None:
        dropdown = ipywidgets.Dropdown(options=list(options), description=label, style=STYLE)
        try:
            dropdown.value = value
        except traitlets.TraitError:
            raise ValueError(f"{name} = {value!r} is not among its choices {list(options)}") from None
        return dropdown
    kind = typing.get_type_hints(type(owner))[leaf]
    if kind not in WIDGET_FOR_TYPE:
        raise TypeError(f"{name}: no widget for type {kind}; give it choices to make a dropdown")
    layout = {"width": "80%"} if kind is str else {}  # room for paths
    return WIDGET_FOR_TYPE[kind](value=value, description=label, style=STYLE, layout=layout)


def _container(config: Any, widgets: dict[str, ipywidgets.Widget], descriptions: dict[str, str], prefix: str = ""):
    rows, sections = [], []
    for f in dataclasses.fields(config):
        name = prefix + f.name
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            if any(w.startswith(name + ".") for w in widgets):
                body = _container(value, widgets, descriptions, name + ".")
                section = ipywidgets.Accordion(children=[body])
                section.set_title(0, descriptions.get(name) or _readable(f.name))  # works in ipywidgets 7 and 8
                sections.append(section)
        elif name in widgets:
            rows.append(widgets[name])
    return ipywidgets.VBox(rows + sections)


def _replaced(config: Any, values: dict[str, Any]) -> Any:
    changes = {}
    for f in dataclasses.fields(config):
        current = getattr(config, f.name)
        if dataclasses.is_dataclass(current):
            prefix = f.name + "."
            nested = {k.removeprefix(prefix): v for k, v in values.items() if k.startswith(prefix)}
            changes[f.name] = _replaced(current, nested)  # always a new object, never shared with the original
        elif f.name in values:
            changes[f.name] = values[f.name]
    return dataclasses.replace(config, **changes)


def _readable(name: str) -> str:
    return name.replace("_", " ").capitalize()
