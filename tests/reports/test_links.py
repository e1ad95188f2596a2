"""Link rewriting: which links become tracked slots, where the pixel goes, what stays byte-for-byte."""

from __future__ import annotations

import pytest

from missiva.messages.mime import link_slot
from missiva.reports.links import MAX_LINKS, TooManyLinks, rewrite

HTML = """<html><head><style>a{color:red}</style></head><body>
<p>Hi [nome|friend], <a href="https://shop.example/sale?a=1&amp;b=2" class="btn">Sale</a></p>
<A HREF='https://shop.example/about'>About</A> <a href=https://shop.example/x>bare</a>
<a href="mailto:help@shop.example">mail</a> <a href="#top">top</a> <a href="tel:+39061234">call</a>
<a href="https://shop.example/u?email=[email]">personal</a>
<!--[if mso]><a href="https://shop.example/outlook">vml</a><![endif]-->
<a data-missiva-track="off" href="https://shop.example/private">untracked</a>
<a href="http://missiva.test/u/m1.r2.abc">unsubscribe</a>
<a href="https://shop.example/sale?a=1&b=2">Sale again</a>
</body></html>"""


def test_http_links_become_slots_and_the_rest_is_untouched():
    out = rewrite(HTML, None, own_base="http://missiva.test")
    assert out.urls == (
        "https://shop.example/sale?a=1&b=2",
        "https://shop.example/about",
        "https://shop.example/x",
    )
    assert out.html.count(f'href="{link_slot(0)}"') == 2  # the same URL twice shares one slot
    assert f'<A HREF="{link_slot(1)}">About</A>' in out.html
    for untouched in (
        'href="mailto:help@shop.example"',
        'href="#top"',
        'href="tel:+39061234"',
        'href="https://shop.example/u?email=[email]"',
        '<!--[if mso]><a href="https://shop.example/outlook">vml</a><![endif]-->',
        'href="https://shop.example/private"',
        'href="http://missiva.test/u/m1.r2.abc"',
        "Hi [nome|friend],",
        "<style>a{color:red}</style>",
    ):
        assert untouched in out.html
    pixel = f'<img src="{link_slot(3)}"'
    assert out.pixel and out.html.index(pixel) < out.html.index("</body>") and out.html.count(pixel) == 1


def test_hand_written_text_part_shares_the_slots_and_the_pixel_comes_last():
    out = rewrite(
        '<body><a href="https://a.example/">a</a></body>',
        "Visit https://b.example/page. Or https://a.example/, or mailto:x@y.example",
    )
    assert out.urls == ("https://a.example/", "https://b.example/page")
    assert out.text == f"Visit {link_slot(1)}. Or {link_slot(0)}, or mailto:x@y.example"
    assert link_slot(2) in out.html and out.slot_count == 3


def test_opens_only_and_clicks_only():
    opens_only = rewrite('<a href="https://a.example/">a</a>', clicks=False)
    assert opens_only.urls == () and opens_only.html.startswith('<a href="https://a.example/">')
    assert link_slot(0) in opens_only.html
    clicks_only = rewrite('<a href="https://a.example/">a</a>', opens=False)
    assert clicks_only.urls == ("https://a.example/",) and not clicks_only.pixel
    assert "<img" not in clicks_only.html


def test_jinja_templates_keep_their_syntax():
    source = '{% for p in products %}<a href="{{ p.url }}">{{ p.name }}</a>{% endfor %}<a href="https://x.example/">x</a>'
    out = rewrite(source)
    assert out.urls == ("https://x.example/",)
    assert out.html.startswith('{% for p in products %}<a href="{{ p.url }}">{{ p.name }}</a>{% endfor %}')


def test_too_many_links_is_refused():
    source = "".join(f'<a href="https://x.example/{i}">{i}</a>' for i in range(MAX_LINKS + 1))
    with pytest.raises(TooManyLinks, match=str(MAX_LINKS)):
        rewrite(source)
