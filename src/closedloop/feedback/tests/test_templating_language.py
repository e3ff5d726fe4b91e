"""The template language: names only, conditions, escaping, sanitising, hostile input."""

from __future__ import annotations

import datetime as dt

import pytest

from closedloop.feedback.templating import (
    TemplateError,
    compile_template,
    format_value,
    rename_in_template,
    template_names,
)

COLUMNS = ["first name", "score", "email", "Total (%)", "link", "when"]
CONDITIONS = ["Low score", "High"]


def compile_(text, **kwargs):
    kwargs.setdefault("columns", COLUMNS)
    kwargs.setdefault("conditions", CONDITIONS)
    return compile_template(text, **kwargs)


def test_names_with_spaces_and_symbols_insert_values():
    t = compile_("Hi {{ first name }}, {{Total (%)}}!", text_format="text")
    assert t.render({"first name": "Ana", "Total (%)": 91.5}) == "Hi Ana, 91.5!"


def test_attributes_win_over_columns_of_the_same_name():
    t = compile_(
        "{{ score }} / {{ course }}",
        attributes={"score": "attr", "course": "Bio"},
        text_format="text",
    )
    assert t.render({"score": 10}) == "attr / Bio"


def test_conditions_select_the_branch_and_else():
    t = compile_(
        "{% if Low score %}work harder{% elif High %}great{% else %}ok{% endif %}",
        text_format="text",
    )
    assert t.render({}, {"Low score": True}) == "work harder"
    assert t.render({}, {"High": True}) == "great"
    assert t.render({}, {}) == "ok"


def test_nulls_print_empty_and_doubles_drop_a_trailing_zero():
    t = compile_("[{{ score }}][{{ first name }}]", text_format="text")
    assert t.render({"score": None, "first name": None}) == "[][]"
    assert t.render({"score": 85.0}) == "[85][]"
    assert t.render({"score": 85.25}) == "[85.25][]"
    assert format_value(True) == "True"


def test_datetimes_print_in_the_accounts_time_zone():
    t = compile_("{{ when }}", text_format="text", time_zone="Africa/Kigali")
    value = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)
    assert t.render({"when": value}) == "2024-03-01 11:00"


def test_values_are_escaped_in_html_but_not_in_text():
    html = compile_("<p>{{ first name }}</p>")
    assert html.render({"first name": "<b>&"}) == "<p>&lt;b&gt;&amp;</p>"
    text = compile_("{{ first name }}", text_format="text")
    assert text.render({"first name": "<b>&"}) == "<b>&"


def test_the_templates_html_is_sanitised_once():
    t = compile_(
        '<p onclick="steal()">Hi</p><script>alert(1)</script><img src="x" onerror="alert(2)">'
        '<a href="javascript:alert(3)">x</a><a href="https://ok.example">ok</a><iframe src="//x"></iframe>'
    )
    out = t.render({})
    for bad in ("onclick", "<script", "alert", "onerror", "javascript:", "<iframe"):
        assert bad not in out
    assert 'href="https://ok.example"' in out


def test_values_at_the_start_of_a_link_cannot_be_javascript_urls():
    t = compile_('<a href="{{ link }}">go</a>')
    assert 'href=""' in t.render({"link": "javascript:alert(1)"})
    assert 'href="https://x.example/a?b=1&amp;c=2"' in t.render(
        {"link": "https://x.example/a?b=1&c=2"}
    )


def test_conditions_between_table_rows_stay_in_place():
    t = compile_("<table>{% if High %}<tr><td>{{ score }}</td></tr>{% endif %}</table>")
    assert "<td>5</td>" in t.render({"score": 5}, {"High": True})
    assert "<td>" not in t.render({"score": 5}, {"High": False})


def test_markdown_becomes_sanitised_html():
    t = compile_("Hello **{{ first name }}**\n\n<script>x</script>", text_format="markdown")
    out = t.render({"first name": "A_b*"})
    assert "<strong>A_b*</strong>" in out
    assert "<script" not in out


def test_json_templates_encode_each_value():
    t = compile_('{"n": {{ first name }}, "s": {{ score }}}', text_format="json")
    assert t.render({"first name": 'A"b', "score": None}) == '{"n": "A\\"b", "s": null}'


def test_a_plain_text_version_of_html():
    t = compile_('<p>Hi {{ first name }}</p><ul><li>one</li></ul><a href="https://e.x">site</a>')
    text = t.render_text({"first name": "<Ana>"})
    assert "Hi <Ana>" in text and "- one" in text and "site (https://e.x)" in text


@pytest.mark.parametrize(
    "text",
    [
        "{{ settings.SECRET_KEY }}",
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ score|upper }}",
        "{{ lipsum() }}",
        "{% include 'web/base.html' %}",
        "{% import 'x' as y %}",
        "{% extends 'web/base.html' %}",
        "{% for i in range(10**9) %}x{% endfor %}",
        "{% raw %}{{ x }}{% endraw %}",
        "{% set x = 1 %}",
        "{% macro m() %}{% endmacro %}",
        "{# a comment #}",
        "{% load static %}",
        "{{ score",
        "{% if High %}no end",
        "{% endif %}",
        "{% else %}",
        "{% if Unknown %}x{% endif %}",
        "{{ no such column }}",
    ],
)
def test_hostile_or_broken_templates_are_refused_never_evaluated(text):
    with pytest.raises(TemplateError):
        compile_(text)
    with pytest.raises(TemplateError):
        compile_(text, text_format="text")


@pytest.mark.parametrize(
    "text",
    ["&#123;% endraw %}{{ score }}", "{<script></script>% endraw %}{<script></script>{ 7*7 }}"],
)
def test_sanitising_cannot_assemble_a_tag_out_of_pieces(text):
    with pytest.raises(TemplateError):
        compile_(text)
    # in plain text nothing is removed, so the pieces stay literal text
    literal = text.replace("{{ score }}", "")
    assert compile_(literal, text_format="text").render({}) == literal


def test_errors_name_the_line():
    with pytest.raises(TemplateError) as caught:
        compile_("line one\nline two {{ settings.SECRET_KEY }}")
    assert caught.value.line == 2
    assert "Line 2" in str(caught.value)
    assert "settings.SECRET_KEY" in str(caught.value)


def test_report_and_rubric_tags_only_where_allowed():
    t = compile_('{% report "score" "email" %}', allow_reports=True)
    assert t.reports == [("score", "email")]
    assert t.render({}, inserts={"r0": "<table></table>"}) == "<table></table>"
    with pytest.raises(TemplateError):
        compile_('{% report "score" %}', allow_reports=False)
    with pytest.raises(TemplateError):
        compile_('{% report "nope" %}')
    with pytest.raises(TemplateError):
        compile_("{% rubric %}", allow_rubric=False)


def test_rename_changes_only_the_name_everywhere_it_is_used():
    text = 'A {{ score }} {{score}} {% if High %}{% report "score" "email" %}{% endif %} score'
    renamed = rename_in_template(text, "score", "total score")
    assert (
        renamed
        == 'A {{ total score }} {{ total score }} {% if High %}{% report "total score" "email" %}{% endif %} score'
    )
    assert (
        rename_in_template("{% if High %}x{% endif %}", "High", "Top") == "{% if Top %}x{% endif %}"
    )


def test_template_names_lists_columns_and_conditions():
    assert template_names('{{ a b }} {% if C %}{% report "d" %}{% endif %}') == {"a b", "C", "d"}


def test_markdown_blocks_inside_conditions_stay_blocks():
    t = compile_("Hi\n\n{% if High %}\n- one\n- two\n{% endif %}\n", text_format="markdown")
    shown = t.render({}, {"High": True})
    assert "<ul>" in shown and "<li>one</li>" in shown and "<p></p>" not in shown
    assert "<li>" not in t.render({}, {"High": False})


def test_tags_inside_attributes_work_and_values_stay_escaped():
    t = compile_(
        '<p class="{% if High %}big{% endif %}">x</p><img src="https://x.example/{{ email }}" alt="{{ email }}">'
    )
    out = t.render({"email": 'a"b'}, {"High": True})
    assert '<p class="big">' in out and 'alt="a&#34;b"' in out
