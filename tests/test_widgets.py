import dataclasses

import ipywidgets
import pytest

from dflib.config import ModelConfig, PredictConfig, PreprocessConfig, TrainConfig
from dflib.widgets import config_form


def leaf_names(config, prefix=""):
    names = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            names += leaf_names(value, prefix + f.name + ".")
        else:
            names.append(prefix + f.name)
    return names


@pytest.mark.parametrize("cls", [PreprocessConfig, TrainConfig, PredictConfig])
def test_defaults_read_back_unchanged(cls):
    form = config_form(cls())
    assert list(form.widgets) == leaf_names(cls())
    assert form.value() == cls()


def test_form_starts_from_the_given_instance_and_returns_a_new_one():
    config = TrainConfig(epochs=7, model=ModelConfig(hidden_size=64))
    form = config_form(config)
    form.set(**{"model.dropout": 0.0})
    result = form.value()
    assert (result.epochs, result.model.hidden_size, result.model.dropout) == (7, 64, 0.0)
    assert result is not config and result.model is not config.model
    assert config.model.dropout == 0.4  # the caller's config is untouched


def test_widget_edits_read_back_including_nested():
    form = config_form(TrainConfig())
    form.widgets["epochs"].value = 3
    form.widgets["lr"].value = 0.01
    form.widgets["data"].value = "/content/drive/MyDrive/crops"
    form.widgets["model.bidirectional"].value = True
    form.widgets["augment.jpeg_quality_min"].value = 60
    result = form.value()
    assert result == dataclasses.replace(
        TrainConfig(),
        epochs=3,
        lr=0.01,
        data="/content/drive/MyDrive/crops",
        model=ModelConfig(bidirectional=True),
        augment=dataclasses.replace(TrainConfig().augment, jpeg_quality_min=60),
    )


def test_widget_kind_follows_field_type_and_types_survive():
    form = config_form(TrainConfig())
    assert isinstance(form.widgets["amp"], ipywidgets.Checkbox)
    assert isinstance(form.widgets["batch_size"], ipywidgets.IntText)
    assert isinstance(form.widgets["model.dropout"], ipywidgets.FloatText)
    assert isinstance(form.widgets["out"], ipywidgets.Text)
    form.set(batch_size=8.0, lr=1)  # what a typed-in number may look like
    result = form.value()
    assert type(result.batch_size) is int and type(result.lr) is float
    assert type(result.model.hidden_size) is int and type(result.amp) is bool


def test_fields_limit_the_widgets_and_the_rest_keeps_its_value():
    config = TrainConfig(seed=1)
    form = config_form(config, fields=(name for name in ["epochs", "model.name", "augment"]))
    augment_fields = [n for n in leaf_names(config) if n.startswith("augment.")]
    assert list(form.widgets) == ["model.name", *augment_fields, "epochs"]  # declaration order
    form.set(epochs=2)
    assert form.value() == dataclasses.replace(config, epochs=2)


def test_choices_make_a_dropdown_with_those_options():
    form = config_form(
        TrainConfig(),
        choices={"optimizer": ["adamw", "sgd"], "model.readout": [("mean over time", "mean"), ("last step", "last")]},
    )
    optimizer, readout = form.widgets["optimizer"], form.widgets["model.readout"]
    assert isinstance(optimizer, ipywidgets.Dropdown) and optimizer.options == ("adamw", "sgd")
    assert readout.label == "mean over time"
    readout.value = "last"
    optimizer.value = "sgd"
    result = form.value()
    assert (result.optimizer, result.model.readout) == ("sgd", "last")


def test_value_outside_choices_is_a_clear_error():
    with pytest.raises(ValueError, match="detector = 'centerface' is not among its choices"):
        config_form(PreprocessConfig(), choices={"detector": ["retinaface", "dlib"]})


@pytest.mark.parametrize("argument", ["fields", "choices", "descriptions"])
def test_unknown_names_are_a_clear_error(argument):
    value = ["model.nmae"] if argument == "fields" else {"model.nmae": ["a"]}
    with pytest.raises(ValueError, match=f"{argument}: no field model.nmae in TrainConfig"):
        config_form(TrainConfig(), **{argument: value})


def test_set_unknown_name_is_a_clear_error():
    form = config_form(TrainConfig(), fields=["epochs"])
    with pytest.raises(KeyError, match="lr"):
        form.set(lr=0.1)


def test_nested_configs_are_titled_sections():
    form = config_form(TrainConfig(), descriptions={"augment": "Augmentation", "lr": "Learning rate"})
    sections = [child for child in form.widget.children if isinstance(child, ipywidgets.Accordion)]
    assert [s.get_title(0) for s in sections] == ["Model", "Augmentation"]
    assert form.widgets["model.dropout"] in sections[0].children[0].children
    assert form.widgets["lr"] in form.widget.children
    assert form.widgets["lr"].description == "Learning rate"
    assert form.widgets["batch_size"].description == "Batch size"
    assert form.widgets["batch_size"].style.description_width == "initial"


def test_section_without_shown_fields_is_left_out():
    form = config_form(TrainConfig(), fields=["epochs", "model.dropout"])
    sections = [child for child in form.widget.children if isinstance(child, ipywidgets.Accordion)]
    assert [s.get_title(0) for s in sections] == ["Model"]


def test_form_displays_as_its_widget(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    form = config_form(PredictConfig())
    form._ipython_display_()
    assert shown == [form.widget]


def test_class_instead_of_instance_is_a_clear_error():
    with pytest.raises(TypeError, match="instance"):
        config_form(TrainConfig)
