"""Personalisation: MailUp merge tags and sandboxed Jinja2."""

from __future__ import annotations

import pytest

from missiva.messages.templating import (
    FieldMap,
    TemplateError,
    TemplateSecurityError,
    compile_template,
)

FIELDS = FieldMap({"Nome": 1, "Cognome": 2, "Città": 3})


def test_merge_tags_by_number_and_by_name_in_any_case() -> None:
    template = compile_template("[NOME] [campo2] <[Email]> da [città]", part="text", fields=FIELDS)

    assert template.render("anna@example.org", {1: "Anna", 2: "Rossi", 3: "Roma"}) == (
        "Anna Rossi <anna@example.org> da Roma"
    )


def test_per_tag_default_replaces_empty_and_missing_values() -> None:
    template = compile_template(
        "Ciao [nome|Cliente], [campo2|] da [città|Italia]", part="text", fields=FIELDS
    )

    assert template.render("a@example.org", {1: "  ", 3: None}) == "Ciao Cliente,  da Italia"


def test_values_are_escaped_in_html_but_not_in_text() -> None:
    value = {1: '<script>alert("x")</script> & co'}
    html = compile_template("<p>[nome]</p>", part="html", html_part=True, fields=FIELDS)
    text = compile_template("[nome]", part="text", fields=FIELDS)

    assert html.render("a@example.org", value) == (
        "<p>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co</p>"
    )
    assert text.render("a@example.org", value) == value[1]


def test_braces_in_the_template_are_literal_text() -> None:
    template = compile_template("{0} {nome} [nome] }{", part="text", fields=FIELDS)

    assert template.render("a@example.org", {1: "{x}"}) == "{0} {nome} {x} }{"


def test_unknown_merge_tag_names_its_line_and_tag() -> None:
    with pytest.raises(TemplateError) as caught:
        compile_template("<p>\nCiao\n[nmoe]</p>", part="html", html_part=True, fields=FIELDS)

    assert (caught.value.part, caught.value.line, caught.value.tag) == ("html", 3, "nmoe")
    assert "html, line 3 (tag 'nmoe')" in str(caught.value)


def test_conditional_comments_and_css_selectors_are_not_tags() -> None:
    source = (
        "<style>a[x-apple-data-detectors]{color:inherit}</style>"
        "<!--[if mso]><table><![endif]-->[nome]<!--[if mso]></table><![endif]-->"
    )
    template = compile_template(source, part="html", html_part=True, fields=FIELDS)

    assert template.render("a@example.org", {1: "Anna"}) == source.replace("[nome]", "Anna")


def test_jinja_conditionals_loops_and_defaults() -> None:
    source = (
        "{% if nome %}Ciao {{ nome }}{% else %}Ciao {{ campo1|default('Cliente', true) }}{% endif %}:"
        "{% for product in products %} {{ loop.index }}.{{ product }}{% endfor %}"
    )
    template = compile_template(
        source, part="html", mode="jinja", html_part=True, fields=FIELDS, shared={"products": ["A&B", "C"]}
    )

    assert template.render("a@example.org", {1: "<Anna>"}) == "Ciao &lt;Anna&gt;: 1.A&amp;B 2.C"
    assert template.render("a@example.org", {}) == "Ciao Cliente: 1.A&amp;B 2.C"


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ email.__class__ }}",
        "{% set x = [] %}{{ x.append(1) }}",
    ],
)
def test_sandbox_refuses_python_internals(source: str) -> None:
    template = compile_template("ok\n" + source, part="html", mode="jinja", html_part=True, fields=FIELDS)

    with pytest.raises(TemplateSecurityError) as caught:
        template.render("a@example.org", {})

    assert caught.value.line == 2
    assert "refused by the sandbox" in str(caught.value)


def test_jinja_syntax_error_names_line_and_tag() -> None:
    with pytest.raises(TemplateError) as caught:
        compile_template("a\nb\n{% for x in products %}", part="html", mode="jinja", shared={"products": []})

    assert (caught.value.line, caught.value.tag) == (3, "for")


def test_jinja_unknown_variable_is_refused_at_compile_time() -> None:
    with pytest.raises(TemplateError) as caught:
        compile_template("Ciao\n{{ nmoe }}", part="subject", mode="jinja", fields=FIELDS)

    assert (caught.value.part, caught.value.line, caught.value.tag) == ("subject", 2, "nmoe")


def test_jinja_runtime_error_names_its_line() -> None:
    template = compile_template("a\n\n{{ 1 // campo4|int }}", part="text", mode="jinja", fields=FIELDS)

    with pytest.raises(TemplateError) as caught:
        template.render("a@example.org", {4: "0"})

    assert caught.value.line == 3
    assert "ZeroDivisionError" in str(caught.value)


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown template mode 'liquid'"):
        compile_template("x", part="text", mode="liquid")  # type: ignore[arg-type]
