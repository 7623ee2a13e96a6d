"""`{{ ... }}` placeholders: parsing references and filling in one context at a time."""

from __future__ import annotations

import pytest

from conductor.spec.template import Ref, TemplateError, parse_ref, placeholders, render


def test_each_reference_form_is_read_and_task_ids_may_hold_dots() -> None:
    assert parse_ref("matrix.module") == Ref("matrix", "module")
    assert parse_ref("env.HOME") == Ref("env", "HOME")
    assert parse_ref("tasks.v1.2.outputs.port") == Ref("tasks", "v1.2", "port")
    assert parse_ref("tasks.T5[module=auth].state") == Ref("tasks", "T5[module=auth]")
    assert parse_ref("tasks.T1") is None and parse_ref("secrets.X") is None


def test_only_the_given_contexts_are_filled_and_other_braces_stay() -> None:
    text = "{{ matrix.m }} then {{ tasks.A.outputs.x }} and {{ jinja }}"
    once = render(text, lambda r: "auth", {"matrix"})
    assert once == "auth then {{ tasks.A.outputs.x }} and {{ jinja }}"
    assert render(once, lambda r: f"<{r.key}>", {"tasks"}) == "auth then <x> and {{ jinja }}"


def test_a_missing_value_or_a_malformed_reference_is_an_error_naming_it() -> None:
    with pytest.raises(TemplateError, match=r"matrix\.nope"):
        render("{{ matrix.nope }}", lambda r: None, {"matrix"})
    with pytest.raises(TemplateError, match=r"tasks\.A\.output"):
        list(placeholders("{{ tasks.A.output }}"))


def test_values_are_inserted_verbatim_never_rendered_again() -> None:
    assert render("{{ matrix.a }}", lambda r: "{{ matrix.a }}", {"matrix"}) == "{{ matrix.a }}"
