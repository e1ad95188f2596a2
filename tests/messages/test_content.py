"""One-time preparation of the HTML: CSS inlining, preheader, text alternative."""

from __future__ import annotations

import pytest

from missiva.messages.content import ContentError, MessageContent, prepare, text_from_html

HTML = (
    "<html><head><style>p.lead{color:#123456}</style></head><body>"
    '<p class="lead">Ciao [nome|Cliente],</p>'
    '<p>Leggi <a href="https://example.com/offerta?e=[email]">l\'offerta</a>.</p>'
    "</body></html>"
)


def content(**changes: object) -> MessageContent:
    values: dict[str, object] = {"subject": "Hi", "html": HTML, "from_address": "news@example.com"}
    values.update(changes)
    return MessageContent(**values)  # type: ignore[arg-type]


def test_css_is_inlined_and_merge_tags_survive() -> None:
    prepared = prepare(content())

    assert "<style>" not in prepared.html
    assert '<p class="lead" style="color: #123456;">Ciao [nome|Cliente],</p>' in prepared.html
    assert 'href="https://example.com/offerta?e=[email]"' in prepared.html


def test_text_part_is_generated_from_the_html_with_links_and_tags() -> None:
    prepared = prepare(content())

    assert prepared.text_from_html
    assert (
        prepared.text == "Ciao [nome|Cliente],\n\nLeggi l'offerta (https://example.com/offerta?e=[email]).\n"
    )


def test_given_text_part_is_kept() -> None:
    prepared = prepare(content(text="Testo mio [nome]"))

    assert (prepared.text, prepared.text_from_html) == ("Testo mio [nome]", False)


def test_preheader_is_the_first_thing_in_the_body_hidden_and_not_in_the_text() -> None:
    prepared = prepare(content(preheader="Solo oggi: -20% <subito>"))

    body = prepared.html.split("<body>", 1)[1]
    assert body.startswith('<div style="display:none;')
    assert "Solo oggi: -20% &lt;subito&gt;</div>" in body
    assert "Solo oggi" not in prepared.text


def test_jinja_blocks_between_table_rows_stay_in_place_through_css_inlining() -> None:
    source = (
        "<style>td{padding:2px}</style><table><tr><td>Head</td></tr>"
        '{% for p in products %}<tr><td class="{{ p.kind }}">{{ p.name }}</td></tr>{% endfor %}</table>'
    )

    prepared = prepare(content(html=source, mode="jinja"))

    assert (
        '<tr><td style="padding: 2px;">Head</td></tr>{% for p in products %}'
        '<tr><td class="{{ p.kind }}" style="padding: 2px;">{{ p.name }}</td></tr>{% endfor %}'
    ) in prepared.html


def test_outlook_conditional_comments_pass_through() -> None:
    source = (
        "<body><!--[if mso]><table><tr><td><![endif]-->Hi [nome]"
        "<!--[if mso]></td></tr></table><![endif]--></body>"
    )

    prepared = prepare(content(html=source))

    assert "<!--[if mso]><table><tr><td><![endif]-->Hi [nome]<!--[if mso]></td></tr></table><![endif]-->" in (
        prepared.html
    )
    assert text_from_html(source, "merge").strip() == "Hi [nome]"


def test_a_message_needs_some_body() -> None:
    with pytest.raises(ContentError, match="needs an HTML part, a text part, or both"):
        prepare(content(html=None))
