"""Property-based tests of the study-file parser (hypothesis)."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ecotune.spec import KNOBS, SpecError, StudySpec, load_spec

SECTIONS = ["study", "data", "model", "training", "energy", "budgets", "early_stopping",
            "search_space"]
FIELDS = ["name", "storage", "sampler", "n_trials", "objectives", "seed", "epochs", "lr",
          "low", "high", "type", "choices", "log", "step", "grid", "meter", "country",
          "trial_energy_j", "width"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(FIELDS + ["x"]), inner, max_size=4)), max_leaves=8)
specs = st.dictionaries(st.sampled_from(SECTIONS + ["extra"]),
                        st.one_of(values, st.dictionaries(st.sampled_from(FIELDS), values,
                                                          max_size=5)), max_size=5)

# An error message starts with a field path ("study.n_trials: ..." or "search_space: ...").
PATH = re.compile(r"^[A-Za-z_][\w]*(\.[\w-]+)*: ")


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs)
@example({"study": {"objectives": [""]}})  # once found: a message held the separator
@example({"search_space": {"zz": {"type": "float", "low": 0, "high": 1}}})
def test_random_dicts_raise_only_spec_error_naming_a_field(raw: dict) -> None:
    try:
        load_spec(raw)
    except SpecError as err:
        for part in str(err).split("; "):
            assert PATH.match(part), str(err)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["study", *FIELDS]), values, max_size=4))
def test_random_study_sections_raise_only_spec_error(study: dict) -> None:
    try:
        load_spec({"study": study})
    except SpecError as err:
        assert PATH.match(str(err)), str(err)


def _float_param():
    @st.composite
    def build(draw):
        log = draw(st.booleans())
        low = draw(st.floats(1e-6 if log else -1e3, 1e3, allow_nan=False))
        high = draw(st.floats(low, max(low, 1e3) * 2 + 1e-6, allow_nan=False))
        return {"type": "float", "low": low, "high": high, "log": log}
    return build()


def _int_param():
    @st.composite
    def build(draw):
        low = draw(st.integers(1, 50))
        return {"type": "int", "low": low, "high": draw(st.integers(low, 100))}
    return build()


# Knobs whose every value in these ranges is a valid training setting.
FLOAT_KNOBS = ["weight_decay", "eat_lambda"]
INT_KNOBS = ["epochs", "batch_size"]


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(FLOAT_KNOBS), _float_param(), max_size=2),
       st.dictionaries(st.sampled_from(INT_KNOBS), _int_param(), max_size=2),
       st.sampled_from(["random", "tpe"]))
def test_valid_search_spaces_round_trip(floats: dict, ints: dict, sampler: str) -> None:
    floats = {k: {**v, "low": max(v["low"], 0.0) if not v["log"] else v["low"],
                  "high": max(v["high"], v["low"], 0.0)} for k, v in floats.items()}
    raw = {"study": {"name": "prop", "sampler": sampler}, "search_space": {**floats, **ints}}
    try:
        spec = load_spec(raw)
    except SpecError as err:  # only a knob's own range rules may refuse it
        assert PATH.match(str(err)), str(err)
        return
    assert set(spec.search_space) <= set(KNOBS)
    again = load_spec(spec.model_dump(mode="json"))
    assert again == spec and isinstance(again, StudySpec)
