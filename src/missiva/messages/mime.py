"""MIME skeletons: build a message's structure once, then produce each recipient's wire bytes by joining.

Building an ``email.message.EmailMessage`` per recipient costs more than sending it (see
docs/peers.md §5). So a `MessageSkeleton` encodes everything that is the same for every recipient once:
static headers, boundaries, part headers, attachments in base64. Per recipient it renders the
templates, encodes the personalised parts (quoted-printable or base64, chosen once from the template's
content) and joins bytes. The result is CRLF-terminated RFC 5322 bytes, not yet dot-stuffed.

Every message carries List-Unsubscribe (https one-click URL and mailto) with List-Unsubscribe-Post
(RFC 8058), a Message-ID on the sending domain, Feedback-ID, and X-Missiva-Mailing/-Recipient. The
bounce address (VERP) is the envelope sender: the receiving MTA writes it into Return-Path, so the
message itself has none (RFC 5321 §4.4).
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import encode_rfc2231, formataddr, formatdate

from missiva.inbound import verp
from missiva.messages.content import Attachment, MessageContent, prepare
from missiva.messages.dkim_signing import DkimKeyError, DkimSigner
from missiva.messages.templating import EMPTY_FIELDS, FieldMap, MergeTemplate, Template, compile_template

_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\Z")
_HTTPS_URL = re.compile(r"https://[\x21-\x7e]+\Z")
# Development only: one-click links to this machine (`make run`) may be plain http.
_LOOPBACK_HTTP_URL = re.compile(r"http://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?/[\x21-\x7e]*\Z")
_URL_FORBIDDEN = re.compile(r'[<>"\\]')
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*\Z")
_LINE_BREAKS = re.compile(r"[\r\n\t\x0b\x0c]+")
_ID = re.compile(r"[A-Za-z0-9_]{1,64}\Z")
# A link slot: a URL the skeleton replaces per recipient (click tracking, open pixel). It looks like a
# URL so CSS inlining and the HTML-to-text conversion carry it through like any other link.
_LINK_SLOT = re.compile(r"https://slot-(\d{1,5})\.link\.missiva\.invalid/")
DKIM_HEADERS = (
    b"from",
    b"reply-to",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"feedback-id",
)


class MessageError(ValueError):
    """A message cannot be built: bad sender configuration or unusable recipient data."""


LinkValues = Callable[[str | int], Sequence[str]]


def link_slot(index: int) -> str:
    """The placeholder URL for link slot `index`, filled per recipient from the skeleton's `link_values`.

    Put it into the content before compiling (e.g. as an ``href``): the skeleton replaces it with
    ``link_values(recipient.id)[index]`` in every part, without parsing anything per recipient.
    """
    return f"https://slot-{index}.link.missiva.invalid/"


def _link_pieces(text: str) -> list[str | int]:
    """`text` split at link slots: literal text and slot indexes, alternating, text first and last."""
    pieces: list[str | int] = []
    position = 0
    for match in _LINK_SLOT.finditer(text):
        pieces.append(text[position : match.start()])
        pieces.append(int(match.group(1)))
        position = match.end()
    pieces.append(text[position:])
    return pieces


@dataclass(frozen=True)
class DkimKey:
    """DKIM signing key for one sending domain (``d=`` defaults to the sending domain)."""

    selector: str
    private_key: bytes
    domain: str | None = None


@dataclass(frozen=True)
class SendingDomain:
    """Where a mailing is sent from: Message-ID domain, VERP bounce address, optional DKIM key.

    ``verp_secret`` signs the VERP return path (`missiva.inbound.verp`): without the signature anyone
    could mail the bounce domain and mark arbitrary recipients as bounced.
    """

    name: str
    bounce_local: str = "bounces"
    bounce_domain: str | None = None
    dkim: DkimKey | None = None
    verp_secret: bytes = field(default=b"", repr=False)


@dataclass(slots=True)  # not frozen: one is made per message, and a frozen __init__ costs 4x
class Recipient:
    """One recipient as the renderer needs it; ``fields`` maps MailUp field numbers to values."""

    id: str | int
    email: str
    unsubscribe_url: str
    unsubscribe_mailto: str
    fields: Mapping[int, object] = field(default_factory=dict)


@dataclass(slots=True)  # not frozen: one is made per message
class RenderedMessage:
    """Wire-ready message for one recipient: hand ``envelope_from``, ``recipient`` and ``data`` to SMTP."""

    envelope_from: str
    recipient: str
    message_id: str
    data: bytes


def _check_address(address: str, what: str) -> bytes:
    if not _ADDRESS.match(address):
        if not address.isascii():
            raise MessageError(
                f"{what} {address!r} is not ASCII (internationalised addresses are not supported)"
            )
        raise MessageError(f"{what} {address!r} is not a valid email address")
    return address.encode("ascii")


def encode_header_text(text: str) -> bytes:
    """A header value: ASCII as is, anything else as RFC 2047 base64 encoded-words, one line each."""
    if "\r" in text or "\n" in text or "\t" in text:
        text = _LINE_BREAKS.sub(" ", text)
    if text.isascii() and "=?" not in text and len(text) <= 900:
        return text.encode("ascii")
    words: list[bytes] = []
    chunk: list[str] = []
    size = 0
    for char in text:
        width = len(char.encode("utf-8"))
        if size + width > 45:  # 45 bytes -> 60 base64 chars; with =?utf-8?b??= a word stays under 75
            words.append(b"=?utf-8?b?" + base64.b64encode("".join(chunk).encode()) + b"?=")
            chunk, size = [], 0
        chunk.append(char)
        size += width
    if chunk:
        words.append(b"=?utf-8?b?" + base64.b64encode("".join(chunk).encode()) + b"?=")
    return b"\r\n ".join(words)


def _quoted_printable(text: str) -> bytes:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


def _quoted_printable_piece(text: str) -> bytes:
    """QP for a fragment that is joined to other fragments: it ends with a soft line break.

    A soft break (``=`` CRLF) may sit anywhere and vanishes on decoding, so fragments encoded separately
    can be concatenated without any line exceeding 76 characters. That is what lets the literal text of
    a template be encoded once and only the merge values per recipient.
    """
    if not text:
        return b""
    encoded = _quoted_printable(text)
    return encoded if encoded.endswith(b"\r\n") else encoded + b"=\r\n"


def _base64_lines(text: str) -> bytes:
    encoded = binascii.b2a_base64(text.encode("utf-8"), newline=False)
    return b"\r\n".join([encoded[i : i + 76] for i in range(0, len(encoded), 76)]) + b"\r\n"


class _BodyPart:
    """One text/plain or text/html part: its headers, and an encoder chosen once for its content."""

    def __init__(self, template: Template, subtype: str, source: str) -> None:
        non_ascii = sum(1 for char in source if ord(char) > 127)
        # QP costs 3 bytes per non-ASCII byte (more in UTF-8), base64 a flat 4/3: switch past ~1/6.
        self.base64 = non_ascii * 6 > len(source)
        self.encode = _base64_lines if self.base64 else _quoted_printable
        encoding = b"base64" if self.base64 else b"quoted-printable"
        self.headers = (
            b"Content-Type: text/" + subtype.encode() + b'; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: " + encoding + b"\r\n"
        )
        self.template = template
        self.html = subtype == "html"
        slots = [int(index) for index in _LINK_SLOT.findall(source)]
        # How many link values a recipient must bring (0: the part has no link slots).
        self.link_count = max(slots) + 1 if slots else 0
        self.static: bytes | None = None
        self._merge: MergeTemplate | None = None
        self._linked: list[list[bytes | int]] = []
        if isinstance(template, MergeTemplate):
            if not template.slots and not slots:
                self.static = self.encode(template.render("", {}))
            elif not self.base64:
                self._merge = template
                self._chunks = [_quoted_printable_piece(chunk) for chunk in template.chunks]
                if slots:
                    self._linked = [
                        [p if isinstance(p, int) else _quoted_printable_piece(p) for p in _link_pieces(chunk)]
                        for chunk in template.chunks
                    ]

    def body(self, email: str, values: Mapping[int, object], links: Sequence[str] = ()) -> bytes:
        """The encoded part for one recipient; `links` fill the link slots."""
        if self.static is not None:
            return self.static
        if self.link_count and self.html:
            links = [html.escape(link) for link in links]
        if self._merge is not None:
            encoded = [_quoted_printable_piece(value) for value in self._merge.unique_values(email, values)]
            if self._linked:
                return self._body_with_links(encoded, links)
            chunks = self._chunks
            out = [chunks[0]]
            for index, unique in enumerate(self._merge.order, 1):
                out.append(encoded[unique])
                out.append(chunks[index])
            return b"".join(out)
        text = self.template.render(email, values)
        if self.link_count:
            text = _LINK_SLOT.sub(lambda match: links[int(match.group(1))], text)
        return self.encode(text)

    def _body_with_links(self, encoded: list[bytes], links: Sequence[str]) -> bytes:
        link_bytes = [_quoted_printable_piece(link) for link in links]
        out: list[bytes] = []
        chunks = self._linked
        order = self._merge.order if self._merge is not None else ()
        for index, chunk in enumerate(chunks):
            if index:
                out.append(encoded[order[index - 1]])
            for piece in chunk:
                out.append(link_bytes[piece] if isinstance(piece, int) else piece)
        return b"".join(out)


def _attachment_bytes(attachment: Attachment) -> bytes:
    if not _CONTENT_TYPE.match(attachment.content_type):
        raise MessageError(
            f"attachment {attachment.filename!r}: bad content type {attachment.content_type!r}"
        )
    name = _LINE_BREAKS.sub(" ", attachment.filename).replace('"', "").replace("\\", "").strip()
    if not name:
        raise MessageError("attachment without a file name")
    if name.isascii():
        disposition = f'attachment; filename="{name}"'
        type_name = f'; name="{name}"'
    else:
        disposition = f"attachment; filename*={encode_rfc2231(name, 'utf-8')}"
        type_name = ""
    headers = (
        f"Content-Type: {attachment.content_type}{type_name}\r\n"
        f"Content-Transfer-Encoding: base64\r\n"
        f"Content-Disposition: {disposition}\r\n\r\n"
    ).encode("ascii")
    return headers + base64.encodebytes(attachment.content).replace(b"\n", b"\r\n")


class MessageSkeleton:
    """A compiled message: everything static pre-encoded, ready to render one recipient at a time."""

    def __init__(
        self,
        content: MessageContent,
        *,
        mailing_id: str | int,
        domain: SendingDomain,
        fields: FieldMap = EMPTY_FIELDS,
        feedback_id: str | None = None,
        shared: Mapping[str, object] | None = None,
        inline_css: bool = True,
        link_values: LinkValues | None = None,
    ) -> None:
        """Compile templates and encode the static parts; raises `TemplateError` or `MessageError`.

        `link_values` gives a recipient's URLs for the content's link slots (see `link_slot`).
        """
        self.mailing_id = str(mailing_id)
        if not _ID.match(self.mailing_id):
            raise MessageError(f"mailing id {self.mailing_id!r} must be 1-64 letters, digits or underscores")
        self.domain = domain
        _check_address(f"x@{domain.name}", "sending domain")
        if not self.mailing_id.isdigit():
            raise MessageError(f"mailing id {self.mailing_id!r} must be a number (it goes into VERP)")
        try:  # check the bounce address settings once, not per recipient
            verp.encode(
                0,
                0,
                local=domain.bounce_local,
                domain=domain.bounce_domain or domain.name,
                secret=domain.verp_secret,
            )
        except verp.VerpError as exc:
            raise MessageError(f"sending domain {domain.name!r}: {exc}") from exc
        prepared = prepare(content, inline=inline_css)
        mode = content.mode
        self._subject = compile_template(
            prepared.subject, part="subject", mode=mode, fields=fields, shared=shared
        )
        self._static_subject: bytes | None = None
        if isinstance(self._subject, MergeTemplate) and not self._subject.slots:
            self._static_subject = encode_header_text(self._subject.render("", {}))
        parts = [
            _BodyPart(
                compile_template(
                    prepared.text.replace("\r\n", "\n"),
                    part="text",
                    mode=mode,
                    fields=fields,
                    strict=not prepared.text_from_html,
                    shared=shared,
                ),
                "plain",
                prepared.text,
            )
        ]
        if prepared.html is not None:
            html_template = compile_template(
                prepared.html.replace("\r\n", "\n"),
                part="html",
                mode=mode,
                html_part=True,
                fields=fields,
                shared=shared,
            )
            parts.append(_BodyPart(html_template, "html", prepared.html))
        self._parts = parts
        self._link_count = max(part.link_count for part in parts)
        if self._link_count and link_values is None:
            raise MessageError("the content has link slots but no link values were given")
        self._link_values = link_values
        self._nonce = secrets.token_hex(4)
        self._verp_domain = domain.bounce_domain or domain.name
        self._dkim = domain.dkim
        self._build_static(content, feedback_id or f"{self.mailing_id}:missiva")
        self._date_second = -1
        self._date = b""
        if self._dkim is not None:
            self._check_dkim()

    def _build_static(self, content: MessageContent, feedback_id: str) -> None:
        from_address = _check_address(content.from_address, "sender address").decode()
        from_name = _LINE_BREAKS.sub(" ", content.from_name).strip()
        head = b"From: " + formataddr((from_name, from_address), charset="utf-8").encode("ascii") + b"\r\n"
        if content.reply_to:
            head += b"Reply-To: " + _check_address(content.reply_to, "reply-to address") + b"\r\n"
        self._from_headers = head
        feedback = _LINE_BREAKS.sub(" ", feedback_id)
        if not feedback.isascii():
            raise MessageError(f"Feedback-ID {feedback_id!r} must be ASCII")
        common = (
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            b"Feedback-ID: " + feedback.encode() + b"\r\n"
            b"X-Missiva-Mailing: " + self.mailing_id.encode() + b"\r\n"
            b"MIME-Version: 1.0\r\n"
        )
        token = secrets.token_hex(12)
        alternative = f"=_alt_{token}".encode()  # "=_" never occurs in QP or base64 output
        mixed = f"=_mix_{token}".encode()
        # separators[i] is written after part i's body.
        if len(self._parts) == 1:
            inner_headers = self._parts[0].headers
            inner_open = b""
            separators = [b""]
        else:
            inner_headers = b'Content-Type: multipart/alternative;\r\n boundary="' + alternative + b'"\r\n'
            inner_open = b"--" + alternative + b"\r\n" + self._parts[0].headers + b"\r\n"
            separators = [
                b"\r\n--" + alternative + b"\r\n" + self._parts[1].headers + b"\r\n",
                b"\r\n--" + alternative + b"--\r\n",
            ]
        if content.attachments:
            top_type = b'Content-Type: multipart/mixed;\r\n boundary="' + mixed + b'"\r\n'
            body_open = b"--" + mixed + b"\r\n" + inner_headers + b"\r\n" + inner_open
            separators[-1] += (
                b"".join(
                    b"\r\n--" + mixed + b"\r\n" + _attachment_bytes(attachment)
                    for attachment in content.attachments
                )
                + b"\r\n--"
                + mixed
                + b"--\r\n"
            )
        else:
            top_type = inner_headers
            body_open = inner_open
        self._static_headers = common + top_type + b"\r\n" + body_open
        self._separators = separators

    def _check_dkim(self) -> None:
        key = self._dkim
        assert key is not None
        try:
            self._signer = DkimSigner(key.selector, key.domain or self.domain.name, key.private_key)
        except DkimKeyError as exc:
            raise MessageError(f"DKIM key for {self.domain.name!r} is unusable: {exc}") from exc

    def _sign(self, data: bytes) -> bytes:
        return self._signer.sign(data, DKIM_HEADERS)

    def _now(self) -> bytes:
        second = int(time.time())
        if second != self._date_second:
            self._date_second = second
            self._date = formatdate(second, localtime=False).encode()
        return self._date

    def render(self, recipient: Recipient) -> RenderedMessage:
        """Wire bytes for one recipient; raises `MessageError` for unusable recipient data.

        The unsubscribe URL must be https: RFC 8058 one-click is only honoured over https.
        """
        email = recipient.email
        to = _check_address(email, "recipient address")
        url = recipient.unsubscribe_url
        if not (_HTTPS_URL.match(url) or _LOOPBACK_HTTP_URL.match(url)) or _URL_FORBIDDEN.search(url):
            raise MessageError(f'unsubscribe URL {url!r} must be an https URL without spaces or <>"')
        mailto = recipient.unsubscribe_mailto
        if not _HTTPS_URL.match("https://" + mailto) or _URL_FORBIDDEN.search(mailto) or "@" not in mailto:
            raise MessageError(f'unsubscribe mailto {mailto!r} must be an address without spaces or <>"')
        recipient_id = str(recipient.id)
        if not recipient_id.isdigit():
            raise MessageError(f"recipient id {recipient_id!r} must be a number (it goes into VERP)")
        try:
            envelope_from = verp.encode(
                int(self.mailing_id),
                int(recipient_id),
                local=self.domain.bounce_local,
                domain=self._verp_domain,
                secret=self.domain.verp_secret,
            )
        except verp.VerpError as exc:
            raise MessageError(str(exc)) from exc
        message_id = f"<{self.mailing_id}.{recipient_id}.{self._nonce}@{self.domain.name}>"
        values = recipient.fields
        subject = self._static_subject
        if subject is None:
            subject = encode_header_text(self._subject.render(email, values))
        parts = self._parts
        links: Sequence[str] = ()
        if self._link_count:
            assert self._link_values is not None
            links = self._link_values(recipient.id)
            if len(links) < self._link_count:
                raise MessageError(f"{len(links)} link values given for {self._link_count} link slots")
        chunks = [
            b"Date: ",
            self._now(),
            b"\r\n",
            self._from_headers,
            b"To: ",
            to,
            b"\r\nSubject: ",
            subject,
            b"\r\nMessage-ID: ",
            message_id.encode(),
            b"\r\nList-Unsubscribe: <",
            url.encode(),
            b">,\r\n <mailto:",
            mailto.encode(),
            b">\r\nX-Missiva-Recipient: ",
            recipient_id.encode(),
            b"\r\n",
            self._static_headers,
            parts[0].body(email, values, links),
            self._separators[0],
        ]
        if len(parts) > 1:
            chunks.append(parts[1].body(email, values, links))
            chunks.append(self._separators[1])
        data = b"".join(chunks)
        if self._dkim is not None:
            data = self._sign(data)
        return RenderedMessage(envelope_from, email, message_id, data)


def compile_message(
    content: MessageContent,
    *,
    mailing_id: str | int,
    domain: SendingDomain,
    fields: FieldMap = EMPTY_FIELDS,
    feedback_id: str | None = None,
    shared: Mapping[str, object] | None = None,
    link_values: LinkValues | None = None,
) -> MessageSkeleton:
    """Compile a message for a mailing; see `MessageSkeleton`."""
    return MessageSkeleton(
        content,
        mailing_id=mailing_id,
        domain=domain,
        fields=fields,
        feedback_id=feedback_id,
        shared=shared,
        link_values=link_values,
    )
