"""The CEBRA parameter form shared by every dock widget that trains models.

:class:`CebraParamsForm` holds the presets (the authors' CEBRA-Time and CEBRA-Behavior recipes),
the main parameters and the collapsible advanced ones, and reads them into ``CEBRA`` constructor
parameters. The Train CEBRA, Consistency runs and Shuffle controls widgets embed one; a widget
hides the fields it sets itself (e.g. the per-run seeds of the consistency runs).

Presets never silently overwrite what the user chose: choosing a preset always sets the
parameters that define it (:data:`PRESET_DEFINES`), but every other parameter keeps its value if it
was changed since a preset last set it; the note under the preset says what was set and what kept.
"""

from __future__ import annotations

import ast
import functools
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
    Widget,
)

from napari_cebra._widgets.background import when_engine_ready
from napari_cebra.workflows.presets import BEHAVIOUR_PARAMS, TIME_PARAMS


def _without_device(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k != "device"}


# The CEBRA authors' recipe (workflows.presets), minus the device (chosen in the form), with
# 5,000 iterations; CEBRA-Behavior uses temperature 1 as in the authors' hippocampus demo.
_GUI_DEFAULTS = {"max_iterations": 5000, "temperature_mode": "constant", "hybrid": False}
PRESETS: dict[str, dict[str, Any]] = {
    "CEBRA-Time": {**_without_device(TIME_PARAMS), **_GUI_DEFAULTS},
    "CEBRA-Behavior": {**_without_device(BEHAVIOUR_PARAMS), **_GUI_DEFAULTS},
}
"""Each preset's ``CEBRA`` parameters."""

PRESET_DEFINES = ("conditional", "hybrid", "temperature", "temperature_mode")
"""Parameters that make a preset what it is: choosing the preset always sets them."""

MAX_BATCH_SIZE = 1_000_000
OPTIMIZER_FIELDS = ("betas", "eps", "weight_decay", "amsgrad")


def available_devices() -> list[str]:
    """``["cpu"]`` plus ``"cuda"`` when torch sees a GPU."""
    import torch

    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def architecture_names() -> list[str]:
    """Every encoder name ``CEBRA(model_architecture=...)`` accepts."""
    from napari_cebra.models import supported_model_architectures

    return list(supported_model_architectures())


class CebraParamsForm(Container):
    """Presets, main and advanced ``CEBRA`` parameters, read into constructor parameters.

    Choosing a preset sets the parameters that define it (:data:`PRESET_DEFINES`: conditional,
    hybrid, temperature and its mode) and, of the preset's other parameters (iterations, batch
    size, output dimension, learning rate, model, …), only those still at the value a preset last
    gave them: values the user (or :meth:`set_params`) changed are kept. :attr:`preset_note` says
    what the preset changed and what it kept, e.g. "CEBRA-Behavior: conditional time_delta,
    temperature τ 1; kept your iterations 300". The "Reset to preset" button sets every parameter
    of the preset.

    Parameters
    ----------
    presets : sequence of str
        Names of :data:`PRESETS` offered; the first is applied.
    hidden : collection of str
        ``CEBRA`` parameters the widget sets itself: not shown and left out of
        :meth:`estimator_params` (``"optimizer_kwargs"`` hides the four Adam fields).
    full_batch : bool
        Allow batch size 0 (= full batch). ``False`` for widgets that score goodness of fit,
        which is defined only for mini-batches (the minimum is then 2).

    Attributes
    ----------
    preset : magicgui.widgets.ComboBox
        The preset; choosing one applies it (:meth:`apply_preset`).
    preset_note : magicgui.widgets.Label
        What the last preset set and kept.
    reset_button : magicgui.widgets.PushButton
        Applies the chosen preset to every parameter.
    advanced_box : magicgui.widgets.Container
        The advanced parameters, shown by :attr:`advanced_toggle` (a checkable button).

    Every ``CEBRA`` parameter has a field of its name (``max_iterations``, ``batch_size``, …),
    except ``optimizer_kwargs`` (fields ``betas``, ``eps``, ``weight_decay``, ``amsgrad``).
    """

    def __init__(
        self,
        *,
        presets: Sequence[str] = tuple(PRESETS),
        hidden: Collection[str] = (),
        full_batch: bool = True,
    ) -> None:
        self.hidden = frozenset(hidden)
        self.preset = ComboBox(label="preset", choices=list(presets), value=presets[0])
        self.preset_note = Label(value="", label="")
        self.preset_note.native.setWordWrap(True)
        self.reset_button = PushButton(
            text="Reset to preset",
            tooltip="Set every parameter of the preset, including those you changed.",
        )
        self.main_box = self._build_main_box(full_batch)
        self.advanced_box = self._build_advanced_box()
        self.advanced_box.visible = False
        self.advanced_toggle = PushButton(text="Advanced parameters ▸")
        self.advanced_toggle.native.setCheckable(True)
        super().__init__(
            widgets=[self.main_box, self.advanced_toggle, self.advanced_box], labels=False
        )
        # checked against the form's own fields: the estimator's parameter list would import
        # scikit-learn in the GUI thread while the dock opens
        unknown = {
            name
            for name in self.hidden
            if name != "optimizer_kwargs" and not isinstance(getattr(self, name, None), Widget)
        }
        if unknown:
            raise ValueError(f"Cannot hide {sorted(unknown)}: not parameters of the form.")
        # the device and encoder lists need torch: filled in once the engine has loaded in its
        # background thread, so that opening the form never imports torch in the GUI thread
        when_engine_ready(self.native, self.offer_engine_choices)
        for name in self.hidden:
            for field in self._fields_of(name):
                field.visible = False
        self._preset_values: dict[str, Any] = {}
        self.advanced_toggle.native.toggled.connect(self._toggle_advanced)
        self.preset.changed.connect(self.apply_preset)
        self.reset_button.changed.connect(self._reset_to_preset)
        self.apply_preset(self.preset.value, keep_edited=False)

    # -------------------------------------------------------------- building
    def _build_main_box(self, full_batch: bool) -> Container:
        self.output_dimension = SpinBox(label="output dimension", min=1, max=128, value=3)
        self.max_iterations = SpinBox(label="iterations", min=1, max=1_000_000, value=5000)
        self.batch_size = SpinBox(
            label="batch size",
            min=0 if full_batch else 2,
            max=MAX_BATCH_SIZE,
            value=512,
            tooltip="0 = full batch" if full_batch else "Goodness of fit needs mini-batches.",
        )
        self.learning_rate = FloatSpinBox(label="learning rate", min=1e-6, max=1.0, step=1e-5)
        self.learning_rate.native.setDecimals(6)
        self.temperature = FloatSpinBox(label="temperature τ", min=1e-3, max=100.0, step=0.01)
        self.time_offsets = SpinBox(label="time offset Δt", min=1, max=100_000, value=10)
        self.seed = SpinBox(label="seed", min=0, max=2**31 - 1, value=0)
        self.device = ComboBox(label="device", choices=["cpu"])  # + GPUs once torch is loaded
        return Container(
            widgets=[
                self.preset,
                self.preset_note,
                self.reset_button,
                self.output_dimension,
                self.max_iterations,
                self.batch_size,
                self.learning_rate,
                self.temperature,
                self.time_offsets,
                self.seed,
                self.device,
            ],
            label="training",
        )

    def _build_advanced_box(self) -> Container:
        self.model_architecture = ComboBox(  # every encoder once torch is loaded
            label="model", choices=[TIME_PARAMS["model_architecture"]]
        )
        self.distance = ComboBox(label="distance", choices=["cosine", "euclidean"])
        self.conditional = ComboBox(
            label="conditional", choices=["time", "time_delta", "delta_normal", "delta"]
        )
        self.temperature_mode = ComboBox(label="temperature mode", choices=["constant", "auto"])
        self.min_temperature = FloatSpinBox(label="min temperature", min=0.0, max=100.0, value=0.1)
        self.delta = FloatSpinBox(
            label="delta", min=0.0, max=1000.0, value=0.0, step=0.01, tooltip="0 = not set"
        )
        self.num_hidden_units = SpinBox(label="hidden units", min=1, max=4096, value=32)
        self.hybrid = CheckBox(text="hybrid (behaviour + time)", value=False)
        self.pad_before_transform = CheckBox(text="pad before transform", value=True)
        self.criterion = ComboBox(label="criterion", choices=["infonce"])
        self.optimizer = ComboBox(label="optimizer", choices=["adam"])
        self.betas = LineEdit(label="Adam betas", value="0.9, 0.999")
        self.eps = LineEdit(label="Adam eps", value="1e-08")
        self.weight_decay = FloatSpinBox(label="weight decay", min=0.0, max=10.0, value=0.0)
        self.amsgrad = CheckBox(text="amsgrad", value=False)
        self.max_adapt_iterations = SpinBox(
            label="adapt iterations", min=1, max=1_000_000, value=500
        )
        self.masking_kwargs = LineEdit(
            label="masking", value="", tooltip="e.g. (('RandomNeuronMask', 0.3),); empty = none"
        )
        self.verbose = CheckBox(text="print progress to the console", value=False)
        self.precision = ComboBox(
            label="precision",
            choices=["auto", "float32", "bfloat16"],
            value="auto",
            tooltip="bfloat16: matrix products in bfloat16 with float32 weights; 1.6-2.2x faster "
            "on CPUs with AVX512-BF16/AMX and on recent GPUs at the same goodness of fit. auto: "
            "bfloat16 where the device runs it natively, else float32",
        )
        return Container(
            widgets=[
                self.model_architecture,
                self.distance,
                self.conditional,
                self.temperature_mode,
                self.min_temperature,
                self.delta,
                self.num_hidden_units,
                self.hybrid,
                self.pad_before_transform,
                self.criterion,
                self.optimizer,
                self.betas,
                self.eps,
                self.weight_decay,
                self.amsgrad,
                self.max_adapt_iterations,
                self.masking_kwargs,
                self.precision,
                self.verbose,
            ],
            label="advanced",
        )

    def _toggle_advanced(self, shown: bool) -> None:
        self.advanced_box.visible = shown
        self.advanced_toggle.text = "Advanced parameters ▾" if shown else "Advanced parameters ▸"

    @staticmethod
    def parameter_names() -> list[str]:
        """The ``CEBRA`` parameters the form sets (the keys of :meth:`estimator_params`)."""
        return list(_parameter_names())

    def _fields_of(self, name: str) -> list[Widget]:
        """The field(s) holding parameter ``name``."""
        if name == "optimizer_kwargs":
            return [getattr(self, field) for field in OPTIMIZER_FIELDS]
        return [getattr(self, name)]

    # -------------------------------------------------------------- presets
    def apply_preset(self, name: str, *, keep_edited: bool = True) -> str:
        """Set the parameters of preset ``name`` and say what changed in :attr:`preset_note`.

        Parameters
        ----------
        name : str
            A key of :data:`PRESETS`.
        keep_edited : bool
            Keep the values changed since a preset last set them, except the parameters that
            define the preset (:data:`PRESET_DEFINES`). ``False`` sets every parameter.

        Returns
        -------
        str
            The note, e.g. ``"CEBRA-Behavior: conditional time_delta, temperature τ 1; kept
            your iterations 300."``.
        """
        if self.preset.value != name:
            with self.preset.changed.blocked():
                self.preset.value = name
        preset = PRESETS[name]
        changed, kept = [], []
        defining = [k for k in PRESET_DEFINES if k in preset]
        for key in defining + [k for k in preset if k not in PRESET_DEFINES]:
            value, field = preset[key], getattr(self, key)
            edited = key in self._preset_values and not _same(
                field, field.value, self._preset_values[key]
            )
            if keep_edited and edited and key not in PRESET_DEFINES:
                if not _same(field, field.value, value) and key not in self.hidden:
                    kept.append(_describe(field))
            elif not _same(field, field.value, value):
                field.value = value
                if key not in self.hidden:
                    changed.append(_describe(field))
            self._preset_values[key] = value
        if not keep_edited:
            note = f"{name}: every parameter at the preset's value."
        else:
            note = f"{name}: " + (", ".join(changed) or "no parameter changed")
            if kept:
                note += "; kept your " + ", ".join(kept)
            note += "."
        self.preset_note.value = note
        return note

    def _reset_to_preset(self, _value: Any = None) -> None:
        self.apply_preset(self.preset.value, keep_edited=False)

    # -------------------------------------------------------------- reading and writing
    def uses_behaviour(self) -> bool:
        """Whether the chosen conditional (or the hybrid option) trains on continuous labels."""
        return self.conditional.value != "time" or bool(self.hybrid.value)

    def estimator_params(self) -> dict[str, Any]:
        """``CEBRA`` constructor parameters from the fields, without the hidden ones.

        Raises
        ------
        ValueError
            If a text field does not parse: Adam betas (two numbers), Adam eps (a number) or
            masking (a Python literal, empty for none).
        """
        betas = _parse_literal("Adam betas", f"({self.betas.value})")
        if not (isinstance(betas, tuple) and len(betas) == 2 and all(_is_number(b) for b in betas)):
            raise ValueError(f"Adam betas must be two numbers, got {self.betas.value!r}.")
        eps = _parse_literal("Adam eps", self.eps.value)
        if not _is_number(eps):
            raise ValueError(f"Adam eps must be a number, got {self.eps.value!r}.")
        masking_text = self.masking_kwargs.value.strip()
        masking = _parse_literal("masking", masking_text) if masking_text else None
        params = {
            "model_architecture": self.model_architecture.value,
            "device": self.device.value,
            "criterion": self.criterion.value,
            "distance": self.distance.value,
            "conditional": self.conditional.value,
            "temperature": float(self.temperature.value),
            "temperature_mode": self.temperature_mode.value,
            "min_temperature": float(self.min_temperature.value),
            "time_offsets": int(self.time_offsets.value),
            "delta": float(self.delta.value) or None,
            "max_iterations": int(self.max_iterations.value),
            "max_adapt_iterations": int(self.max_adapt_iterations.value),
            "batch_size": int(self.batch_size.value) or None,
            "learning_rate": float(self.learning_rate.value),
            "optimizer": self.optimizer.value,
            "output_dimension": int(self.output_dimension.value),
            "verbose": bool(self.verbose.value),
            "num_hidden_units": int(self.num_hidden_units.value),
            "pad_before_transform": bool(self.pad_before_transform.value),
            "hybrid": bool(self.hybrid.value),
            "optimizer_kwargs": (
                ("betas", tuple(float(b) for b in betas)),
                ("eps", float(eps)),
                ("weight_decay", float(self.weight_decay.value)),
                ("amsgrad", bool(self.amsgrad.value)),
            ),
            "masking_kwargs": masking,
            "seed": int(self.seed.value),
            "precision": self.precision.value,
        }
        return {key: value for key, value in params.items() if key not in self.hidden}

    def offer_engine_choices(self) -> None:
        """Offer every device torch sees and every encoder (imports torch if not yet loaded)."""
        for box, choices in (
            (self.device, available_devices()),
            (self.model_architecture, architecture_names()),
        ):
            if list(box.choices) != choices:
                value = box.value
                box.choices = choices
                box.value = value if value in choices else choices[0]

    def set_params(self, params: Mapping[str, Any], *, source: str | None = None) -> list[str]:
        """Show ``params`` (e.g. a session model's ``get_params()``) in the fields.

        The preset becomes the offered one whose conditional matches (without applying it); the
        values set count as the user's, so a preset chosen afterwards keeps them.

        Parameters
        ----------
        params : mapping
            ``CEBRA`` parameters; ``None`` batch size and delta become 0.
        source : str, optional
            Where the parameters come from, for :attr:`preset_note` (e.g. ``"model 'CEBRA-Time
            1'"``).

        Returns
        -------
        list of str
            The parameters not shown: unknown ones, and values a field cannot take (a device this
            machine lacks, a tuple of time offsets, a value out of a field's range).
        """
        self.offer_engine_choices()
        skipped = []
        for key, value in params.items():
            if key not in self.parameter_names() or not self._set_field(key, value):
                skipped.append(key)
        conditional = params.get("conditional", self.conditional.value)
        matching = [n for n in self.preset.choices if PRESETS[n]["conditional"] == conditional]
        if matching:
            with self.preset.changed.blocked():
                self.preset.value = matching[0]
        if source:
            self.preset_note.value = f"Parameters of {source}."
        return skipped

    def _set_field(self, key: str, value: Any) -> bool:
        """Put one parameter into its field(s); ``False`` if the field cannot take the value."""
        if key == "optimizer_kwargs":
            options = dict(value or ())
            texts = {
                "betas": ", ".join(str(b) for b in options.get("betas", (0.9, 0.999))),
                "eps": str(options.get("eps", 1e-8)),
                "weight_decay": float(options.get("weight_decay", 0.0)),
                "amsgrad": bool(options.get("amsgrad", False)),
            }
            return all(self._put(getattr(self, f), texts[f]) for f in OPTIMIZER_FIELDS)
        if key == "masking_kwargs":
            return self._put(self.masking_kwargs, "" if value is None else repr(value))
        if key in ("batch_size", "delta") and value is None:
            value = 0
        if value is None:
            return False
        return self._put(getattr(self, key), value)

    @staticmethod
    def _put(field: Widget, value: Any) -> bool:
        choices = getattr(field, "choices", None)
        if choices is not None and value not in choices:
            return False
        if isinstance(field, SpinBox | FloatSpinBox):
            if isinstance(value, bool) or not _is_number(value):
                return False
            if not field.min <= value <= field.max:
                return False
        try:
            field.value = value
        except (ValueError, TypeError):
            return False
        return True


@functools.cache
def _parameter_names() -> tuple[str, ...]:
    from napari_cebra import CEBRA

    return tuple(CEBRA().get_params(deep=False))


def _same(field: Widget, a: Any, b: Any) -> bool:
    """Whether ``field`` shows ``a`` and ``b`` alike (floats up to the field's decimals)."""
    if isinstance(field, FloatSpinBox) and _is_number(a) and _is_number(b):
        return math.isclose(a, b, rel_tol=0.0, abs_tol=0.5 * 10 ** -field.native.decimals())
    return a == b


def _describe(field: Widget) -> str:
    """``"<label> <value>"`` for the preset note."""
    value = field.value
    if isinstance(value, bool):
        shown = "on" if value else "off"
    elif isinstance(value, float):
        shown = f"{value:g}"
    else:
        shown = str(value)
    label = field.label or getattr(field, "text", "")
    return f"{label} {shown}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _parse_literal(name: str, text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError) as error:
        raise ValueError(f"{name}: cannot read {text!r} ({error}).") from None
