"""The CEBRA parameter form shared by the Train, Consistency and Shuffle controls widgets."""

from __future__ import annotations

import pytest

from napari_cebra._widgets.params_form import MAX_BATCH_SIZE, PRESETS, CebraParamsForm

pytestmark = pytest.mark.gui

TRAIN, CONSISTENCY, CONTROLS = "Train CEBRA", "Consistency runs", "CEBRA shuffle controls"
BOUNDED = (
    "output_dimension",
    "max_iterations",
    "learning_rate",
    "temperature",
    "time_offsets",
    "seed",
    "min_temperature",
    "delta",
    "num_hidden_units",
    "weight_decay",
    "max_adapt_iterations",
)


@pytest.fixture
def widgets(make_napari_viewer):
    viewer = make_napari_viewer()
    return {
        name: viewer.window.add_plugin_dock_widget("napari-cebra", name)[1]
        for name in (TRAIN, CONSISTENCY, CONTROLS)
    }


@pytest.fixture
def train_widget(place_cell_viewer):
    viewer = place_cell_viewer(80, seed=0)
    _, widget = viewer.window.add_plugin_dock_widget("napari-cebra", TRAIN)
    widget.data.neural.value, widget.data.behaviour.value = "neural", "behaviour"
    return widget


def test_three_widgets_share_one_form_with_the_same_bounds(widgets):
    forms = {name: widget.params for name, widget in widgets.items()}
    assert all(isinstance(form, CebraParamsForm) for form in forms.values())
    for field in BOUNDED:
        bounds = {(getattr(f, field).min, getattr(f, field).max) for f in forms.values()}
        assert len(bounds) == 1, field
    # 0 = full batch, except for the controls: goodness of fit needs mini-batches
    assert {name: (f.batch_size.min, f.batch_size.max) for name, f in forms.items()} == {
        TRAIN: (0, MAX_BATCH_SIZE),
        CONSISTENCY: (0, MAX_BATCH_SIZE),
        CONTROLS: (2, MAX_BATCH_SIZE),
    }
    train_form = forms[TRAIN]
    assert train_form.advanced_box.native.isHidden()
    train_form.advanced_toggle.native.click()
    assert not train_form.advanced_box.native.isHidden()
    assert train_form.advanced_toggle.text == "Advanced parameters ▾"
    for widget in widgets.values():  # no widget keeps its own copy of a field
        assert not any(hasattr(widget, f) for f in ("preset", "batch_size", "max_iterations"))

    train = forms[TRAIN].estimator_params()
    # the consistency runs set one seed per run: the form hides its seed
    assert forms[CONSISTENCY].seed.native.isHidden()
    assert forms[CONSISTENCY].estimator_params() == {k: v for k, v in train.items() if k != "seed"}
    # the controls train CEBRA-Behavior only
    assert list(forms[CONTROLS].preset.choices) == ["CEBRA-Behavior"]
    assert forms[CONTROLS].conditional.native.isHidden()
    assert "conditional" not in forms[CONTROLS].estimator_params()
    controls = widgets[CONTROLS].estimator_params()
    assert (controls["conditional"], controls["hybrid"], controls["temperature"]) == (
        "time_delta",
        False,
        1.0,
    )
    with pytest.raises(ValueError, match="Cannot hide"):
        CebraParamsForm(hidden=("no such parameter",))


def test_a_preset_keeps_edited_values_and_says_what_it_changed(train_widget):
    form = train_widget.params
    assert form.preset.value == "CEBRA-Time"
    assert "labels used: none (time only)" in train_widget.data_summary.value
    form.max_iterations.value = 300
    form.batch_size.value = 32
    form.temperature.value = 2.5  # defines the preset: set by the next one

    form.preset.value = "CEBRA-Behavior"
    assert (form.conditional.value, form.temperature.value) == ("time_delta", 1.0)
    assert (form.max_iterations.value, form.batch_size.value) == (300, 32)
    assert form.learning_rate.value == pytest.approx(PRESETS["CEBRA-Behavior"]["learning_rate"])
    note = form.preset_note.value
    assert note.startswith("CEBRA-Behavior: ")
    assert "conditional time_delta" in note and "temperature τ 1" in note
    assert "kept your" in note and "iterations 300" in note and "batch size 32" in note
    assert "learning rate" not in note
    assert "labels used: position, right, left" in train_widget.data_summary.value
    assert train_widget.build_request()[0].params["max_iterations"] == 300

    form.batch_size.value = 512  # back at the recipe's value: no longer the user's
    form.preset.value = "CEBRA-Time"
    note = form.preset_note.value
    assert "kept your iterations 300" in note and "batch size" not in note
    assert (form.conditional.value, form.temperature.value) == ("time", 1.12)

    form.reset_button.native.click()
    assert (form.max_iterations.value, form.batch_size.value) == (5000, 512)
    assert form.preset_note.value == "CEBRA-Time: every parameter at the preset's value."
    # the note is returned too, and a preset applied in code shows in the combo box
    assert form.apply_preset("CEBRA-Behavior").startswith("CEBRA-Behavior: conditional")
    assert form.preset.value == "CEBRA-Behavior"


def test_set_params_shows_a_models_parameters_and_presets_keep_them(train_widget):
    from napari_cebra import CEBRA

    form = train_widget.params
    model = CEBRA(
        **{
            **form.estimator_params(),
            "conditional": "time_delta",
            "temperature": 0.5,
            "batch_size": None,
            "max_iterations": 1234,
            "delta": 0.25,
            "optimizer_kwargs": (
                ("betas", (0.8, 0.95)),
                ("eps", 1e-07),
                ("weight_decay", 0.01),
                ("amsgrad", True),
            ),
        }
    )
    assert form.set_params(model.get_params(), source="model 'm'") == []
    assert form.estimator_params() == model.get_params()
    assert form.preset.value == "CEBRA-Behavior"
    assert form.preset_note.value == "Parameters of model 'm'."

    form.preset.value = "CEBRA-Time"
    assert (form.conditional.value, form.temperature.value) == ("time", 1.12)
    assert (form.max_iterations.value, form.batch_size.value) == (1234, 0)
    assert "kept your" in form.preset_note.value

    skipped = form.set_params({"device": "tpu", "time_offsets": (1, 2), "no_such": 1, "seed": 7})
    assert skipped == ["device", "time_offsets", "no_such"]
    assert form.seed.value == 7 and form.time_offsets.value == 10


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        ("betas", "0.8, oops", "Adam betas: cannot read"),
        ("betas", "0.8", "Adam betas must be two numbers"),
        ("eps", "tiny", "Adam eps: cannot read"),
        ("eps", "(1e-8,)", "Adam eps must be a number"),
        ("masking_kwargs", "(('RandomNeuronMask', 0.3)", "masking: cannot read"),
    ],
)
def test_unparsable_text_fields_raise_clear_errors(train_widget, field, text, message):
    getattr(train_widget.params, field).value = text
    with pytest.raises(ValueError, match=message):
        train_widget.params.estimator_params()
