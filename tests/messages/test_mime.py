"""Per-recipient wire bytes from a compiled skeleton: parse them back and check what a client sees."""

from __future__ import annotations

import base64
import email
import email.policy
from email.message import EmailMessage

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from missiva.inbound import verp
from missiva.messages.content import Attachment, MessageContent
from missiva.messages.mime import DkimKey, MessageError, MessageSkeleton, Recipient, SendingDomain
from missiva.messages.templating import FieldMap, TemplateError, TemplateSecurityError

FIELDS = FieldMap({"nome": 1})
SECRET = b"verp-test-secret"
HTML = "<html><body><p>Ciao [nome|Cliente] &amp; benvenuto, " + "testo lungo " * 40 + "</p></body></html>"


def skeleton(**changes: object) -> MessageSkeleton:
    values: dict[str, object] = {
        "subject": "Offerta per [nome|te]",
        "html": HTML,
        "from_address": "news@example.com",
        "from_name": "Società Più",
        "reply_to": "help@example.com",
    }
    domain = changes.pop(
        "domain", SendingDomain("news.example.com", bounce_domain="bounce.example.com", verp_secret=SECRET)
    )
    values.update(changes)
    return MessageSkeleton(
        MessageContent(**values),  # type: ignore[arg-type]
        mailing_id=12,
        domain=domain,  # type: ignore[arg-type]
        fields=FIELDS,
        feedback_id="12:7:newsletter:missiva",
    )


def recipient(**changes: object) -> Recipient:
    values: dict[str, object] = {
        "id": 345,
        "email": "anna@example.org",
        "unsubscribe_url": "https://news.example.com/u/tok345",
        "unsubscribe_mailto": "unsubscribe+tok345@news.example.com",
        "fields": {1: "Anna"},
    }
    values.update(changes)
    return Recipient(**values)  # type: ignore[arg-type]


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_headers_parse_back_with_list_unsubscribe_and_identifiers() -> None:
    rendered = skeleton().render(recipient())
    message = parse(rendered.data)

    assert str(message["From"]) == "Società Più <news@example.com>"
    assert str(message["Reply-To"]) == "help@example.com"
    assert str(message["To"]) == "anna@example.org"
    assert str(message["Subject"]) == "Offerta per Anna"
    assert message["List-Unsubscribe"] == (
        "<https://news.example.com/u/tok345>, <mailto:unsubscribe+tok345@news.example.com>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Feedback-ID"] == "12:7:newsletter:missiva"
    assert (message["X-Missiva-Mailing"], message["X-Missiva-Recipient"]) == ("12", "345")
    assert message["Message-ID"] == rendered.message_id
    assert rendered.message_id.startswith("<12.345.") and rendered.message_id.endswith("@news.example.com>")
    assert message["Date"].datetime is not None
    assert message["MIME-Version"] == "1.0"
    assert "Return-Path" not in message


def test_envelope_sender_is_a_verp_address_naming_mailing_and_recipient() -> None:
    rendered = skeleton().render(recipient())

    assert rendered.envelope_from.startswith("bounces+m12.r345.")
    assert rendered.envelope_from.endswith("@bounce.example.com")
    assert verp.decode(rendered.envelope_from, secret=SECRET) == (12, 345)
    assert verp.decode(rendered.envelope_from, secret=b"another secret") is None
    assert rendered.recipient == "anna@example.org"


def test_alternative_parts_carry_the_personalised_text_and_html() -> None:
    message = parse(skeleton().render(recipient(fields={1: "Anna <Bianchi>"})).data)

    assert message.get_content_type() == "multipart/alternative"
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert "<p>Ciao Anna &lt;Bianchi&gt; &amp; benvenuto, testo lungo" in html
    assert text.startswith("Ciao Anna <Bianchi> & benvenuto, testo lungo")
    assert str(message["Subject"]) == "Offerta per Anna <Bianchi>"


def test_every_line_respects_the_smtp_limits() -> None:
    data = skeleton().render(recipient(fields={1: "x" * 300})).data

    body = data.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert b"\n" not in data.replace(b"\r\n", b"")


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\r\n.\r\nMAIL FROM:<x@y>", "\n.\n", "x\r\r\n\n"])
def test_rendered_line_ends_are_all_crlf_whatever_the_content_and_fields(value: str) -> None:
    # The SMTP connection trusts this (SendJob.crlf) and skips its own bare CR/LF check: a bare line
    # end would let ".\n" end the message early at some relays (SMTP smuggling).
    html = f"<p>[nome]</p>\n<p>line\rtwo\r\n{value}</p>"
    variants = [
        skeleton(subject=f"S [nome] {value}", html=html, text=f"t\n{value}\r[nome]"),
        skeleton(subject="Γεια [nome]", html=None, text="Καλημέρα " * 30 + value + "\n[nome]"),
    ]
    for variant in variants:
        data = variant.render(recipient(fields={1: value})).data
        assert data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r"), value


def test_empty_field_falls_back_to_the_tag_default() -> None:
    message = parse(skeleton().render(recipient(fields={})).data)

    assert str(message["Subject"]) == "Offerta per te"
    assert "Ciao Cliente &amp; benvenuto" in message.get_body(("html",)).get_content()


def test_non_ascii_content_is_base64_and_decodes_intact() -> None:
    greek = "Καλημέρα [nome], " + "ευχαριστούμε για την αγορά σας. " * 20
    rendered = skeleton(html=None, text=greek, subject="Γεια σου [nome]").render(
        recipient(fields={1: "Άννα"})
    )
    message = parse(rendered.data)

    assert message["Content-Transfer-Encoding"] == "base64"
    assert message.get_content().startswith("Καλημέρα Άννα, ευχαριστούμε")
    assert str(message["Subject"]) == "Γεια σου Άννα"


def test_line_breaks_in_a_field_cannot_add_headers() -> None:
    message = parse(skeleton().render(recipient(fields={1: "Anna\r\nBcc: victim@example.net"})).data)

    assert message["Bcc"] is None
    assert str(message["Subject"]) == "Offerta per Anna Bcc: victim@example.net"


def test_attachments_are_encoded_once_and_round_trip() -> None:
    pdf = bytes(range(256)) * 20
    compiled = skeleton(
        attachments=(
            Attachment("fattura è.pdf", pdf, "application/pdf"),
            Attachment("a.txt", b"hello\n", "text/plain"),
        )
    )
    message = parse(compiled.render(recipient()).data)

    assert message.get_content_type() == "multipart/mixed"
    attachments = list(message.iter_attachments())
    assert [(a.get_filename(), a.get_content_type()) for a in attachments] == [
        ("fattura è.pdf", "application/pdf"),
        ("a.txt", "text/plain"),
    ]
    assert attachments[0].get_content() == pdf
    assert "Ciao Anna" in message.get_body(("html",)).get_content()


def test_text_only_message_is_a_single_part() -> None:
    message = parse(skeleton(html=None, text="Solo testo per [nome]\n").render(recipient()).data)

    assert message.get_content_type() == "text/plain"
    assert message.get_content().replace("\r\n", "\n") == "Solo testo per Anna\n"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"unsubscribe_url": "http://news.example.com/u/1"}, "must be an https URL"),
        ({"unsubscribe_url": "http://127.0.0.1.evil.example/u/1"}, "must be an https URL"),
        ({"unsubscribe_url": "https://x.example.com/u/1>, <https://evil.example"}, "must be an https URL"),
        ({"unsubscribe_mailto": "unsub@example.com>\r\nBcc: x@y.z"}, "unsubscribe mailto"),
        ({"email": "anna@example.org\r\nBcc: x@y.z"}, "not a valid email address"),
        ({"email": "ánna@example.org"}, "not ASCII"),
        ({"id": "12-3"}, "recipient id"),
    ],
)
def test_unusable_recipient_data_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        skeleton().render(recipient(**changes))


def test_loopback_http_unsubscribe_links_are_allowed_for_local_runs() -> None:
    url = "http://127.0.0.1:8000/u/abc"
    message = parse(skeleton().render(recipient(unsubscribe_url=url)).data)
    assert message["List-Unsubscribe"].startswith(f"<{url}>")


def test_template_errors_surface_when_compiling() -> None:
    with pytest.raises(TemplateError, match=r"line 1 \(tag 'nmoe'\)"):
        skeleton(subject="Hi [nmoe]")


def test_bad_sender_is_refused_when_compiling() -> None:
    with pytest.raises(MessageError, match="sender address"):
        skeleton(from_address="not an address")


@pytest.fixture(scope="module")
def dkim_key() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def test_dkim_signature_verifies_and_covers_list_unsubscribe(dkim_key: tuple[bytes, bytes]) -> None:
    private, record = dkim_key
    domain = SendingDomain("news.example.com", dkim=DkimKey("s1", private), verp_secret=SECRET)
    data = skeleton(domain=domain).render(recipient()).data

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record if name == b"s1._domainkey.news.example.com." else b""

    assert data.startswith(b"DKIM-Signature: ")
    assert dkim.verify(data, dnsfunc=dns)
    signed = parse(data)["DKIM-Signature"].replace(" ", "").replace("\r\n", "")
    assert "list-unsubscribe:list-unsubscribe-post" in signed.lower()
    tampered = data.replace(b"https://news.example.com/u/tok345", b"https://evil.example/u/tok345")
    assert not dkim.verify(tampered, dnsfunc=dns)


def test_unusable_dkim_key_is_refused_when_compiling() -> None:
    with pytest.raises(MessageError, match=r"DKIM key for 'news\.example\.com' is unusable"):
        skeleton(
            domain=SendingDomain("news.example.com", dkim=DkimKey("s1", b"not a key"), verp_secret=SECRET)
        )


def test_jinja_message_renders_loops_in_both_parts() -> None:
    compiled = MessageSkeleton(
        MessageContent(
            subject="{{ nome|default('Ciao', true) }}: {{ products|length }} novità",
            html="<ul>{% for p in products %}<li>{{ p }} per {{ nome }}</li>{% endfor %}</ul>",
            from_address="news@example.com",
            mode="jinja",
        ),
        mailing_id=5,
        domain=SendingDomain("example.com", verp_secret=SECRET),
        fields=FIELDS,
        shared={"products": ["Tè & biscotti", "Caffè"]},
    )
    message = parse(compiled.render(recipient(fields={1: "<Anna>"})).data)

    assert str(message["Subject"]) == "<Anna>: 2 novità"
    html = message.get_body(("html",)).get_content()
    assert "<li>Tè &amp; biscotti per &lt;Anna&gt;</li><li>Caffè per &lt;Anna&gt;</li>" in html
    text = message.get_body(("plain",)).get_content()
    assert "Tè & biscotti per <Anna>" in text


def test_jinja_message_reaching_for_internals_is_refused_when_rendering() -> None:
    compiled = MessageSkeleton(
        MessageContent(
            subject="x",
            html="<p>{{ email.__class__.__mro__ }}</p>",
            text="ok",
            from_address="news@example.com",
            mode="jinja",
        ),
        mailing_id=5,
        domain=SendingDomain("example.com", verp_secret=SECRET),
    )

    with pytest.raises(TemplateSecurityError, match="html, line 1: refused by the sandbox"):
        compiled.render(recipient())
