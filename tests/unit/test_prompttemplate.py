"""A prompts session's template: placeholders are the row's cells, nothing else is interpreted."""

from __future__ import annotations

import pytest

from chalicelib.errors import InvalidInput
from chalicelib.prompttemplate import check_template, placeholders, render


def test_placeholders_are_listed_in_order_and_braces_can_be_doubled() -> None:
    assert placeholders("{{x}} {Topic Name} and { prompt }") == ["Topic Name", "prompt"]


@pytest.mark.parametrize(
    ("template", "position"), [("{prompt", 0), ("a } b", 2), ("{}", 0), ("{ }", 0)]
)
def test_a_stray_or_empty_brace_is_an_invalid_template_with_its_position(
    template: str, position: int
) -> None:
    with pytest.raises(InvalidInput) as caught:
        placeholders(template)
    assert (caught.value.code, caught.value.details) == ("invalid_template", {"position": position})


def test_names_match_the_columns_ignoring_case_and_spaces() -> None:
    check_template("{ TOPIC } {prompt}", {"prompt", "Topic"})
    check_template(None, set())


def test_a_name_that_is_no_column_is_refused_listing_the_columns() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_template("{mood}", {"prompt", "topic"})
    assert caught.value.code == "template_unknown_column"
    assert caught.value.details == {"column": "mood", "columns": ["prompt", "topic"]}
    assert caught.value.message == (
        "The template uses {mood}, but the batch has no column 'mood'. Its columns: prompt, topic."
    )


def test_render_fills_cells_verbatim_and_never_reaches_into_objects() -> None:
    cells = {"Topic": "{not a placeholder}", "prompt": "=1+1"}
    assert render("{{{topic}}} {PROMPT} {{prompt}}", cells) == "{{not a placeholder}} =1+1 {prompt}"
    # str.format would read attributes: "{prompt.__class__}" is just an unknown column here.
    with pytest.raises(InvalidInput):
        check_template("{prompt.__class__}", {"prompt"})
