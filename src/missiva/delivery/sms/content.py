"""SMS message content: checking a message, the snapshot a mailing sends, rendering and preview.

The text uses the same merge tags and Jinja2 sandbox as email (:func:`compile_template` on the
text). The opt-out text, when the message asks for it, is appended after rendering, and the result is
analysed as it will be submitted: GSM-7 or UCS-2, segment count, and the characters that forced UCS-2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from missiva.delivery.sms import settings
from missiva.delivery.sms.encoding import MAX_SEGMENTS, SmsAnalysis, SmsTextError, analyse, with_opt_out
from missiva.errors import InvalidInput
from missiva.messages.templating import FieldMap, Template, TemplateError, compile_template

MAX_TEXT = 5000


class SmsTemplateInvalid(InvalidInput):
    """The SMS text does not compile or render; the message names the line and tag."""

    code = "template_invalid"

    def __init__(self, error: TemplateError) -> None:
        super().__init__(str(error), field="text")
        self.line = error.line
        self.tag = error.tag


@dataclass(frozen=True)
class RenderedSms:
    """One recipient's SMS as it will be submitted."""

    text: str
    sender_id: str
    analysis: SmsAnalysis


class SmsTemplate:
    """A compiled SMS snapshot: render per recipient, append the opt-out text."""

    def __init__(self, snapshot: dict[str, Any], fields: FieldMap) -> None:
        text = snapshot.get("text") or ""
        if not text.strip():
            raise InvalidInput("an SMS message needs a text", field="text")
        if len(text) > MAX_TEXT:
            raise InvalidInput(f"SMS text is longer than {MAX_TEXT} characters", field="text")
        try:
            self.template: Template = compile_template(
                text, part="text", mode=snapshot.get("mode") or "merge", fields=fields
            )
        except TemplateError as exc:
            raise SmsTemplateInvalid(exc) from None
        except ValueError as exc:
            raise InvalidInput(str(exc), field="mode") from None
        self.sender_id = snapshot.get("sender_id") or ""
        self.opt_out_text: str | None = snapshot.get("opt_out_text")

    def render_text(self, email: str, values: dict[int, object]) -> str:
        """The text for one recipient, with the opt-out text; TemplateError/SmsTextError when it cannot."""
        text = self.template.render(email, values)
        if self.opt_out_text:
            text = with_opt_out(text, self.opt_out_text)
        if not text.strip():
            raise SmsTextError("the text is empty for this recipient")
        return text

    def render(self, email: str, values: dict[int, object]) -> RenderedSms:
        """The SMS for one recipient and its analysis (raises SmsTextError past 255 parts)."""
        text = self.render_text(email, values)
        analysis = analyse(text)
        if analysis.segments > MAX_SEGMENTS:
            raise SmsTextError(f"text needs {analysis.segments} parts; at most {MAX_SEGMENTS}")
        return RenderedSms(text, self.sender_id, analysis)


def snapshot(session: Session, message: Any, *, require_sender: bool = True) -> dict[str, Any]:
    """What a mailing keeps of an SMS message: text, mode, the resolved sender id and opt-out text.

    Raises InvalidInput when no sender id is known (message, list, account) or the message wants an
    opt-out text and none is configured.
    """
    defaults = settings.defaults_for(session, message.account_id, message.list_id)
    sender_id = message.sender_id or defaults.sender_id
    if require_sender and not sender_id:
        raise InvalidInput(
            "no SMS sender id: set one on the message, its list (PUT /lists/{id}/sms) or the account",
            field="sender_id",
        )
    opt_out_text = None
    if message.opt_out:
        opt_out_text = defaults.opt_out_text
        if not opt_out_text:
            raise InvalidInput(
                "the message asks for an opt-out text but neither its list nor the account has one",
                field="opt_out",
            )
    return {
        "channel": "sms",
        "text": message.text or "",
        "mode": message.mode or "merge",
        "sender_id": sender_id or "",
        "opt_out_text": opt_out_text,
    }


def check_message(session: Session, fields: FieldMap, message: Any) -> None:
    """Check an SMS message when it is saved: sender id, opt-out text, template, render once."""
    if message.html:
        raise InvalidInput("an SMS message has text only, no html", field="html")
    if message.attachments:
        raise InvalidInput("an SMS message cannot have attachments", field="attachments")
    settings.check_sender_id(message.sender_id)
    template = SmsTemplate(snapshot(session, message, require_sender=False), fields)
    try:
        template.render("", {})
    except TemplateError as exc:
        raise SmsTemplateInvalid(exc) from None
    except SmsTextError as exc:
        raise InvalidInput(str(exc), field="text") from None


def analysis_view(analysis: SmsAnalysis) -> dict[str, Any]:
    """The analysis as the API shows it before sending."""
    return {
        "encoding": analysis.encoding,
        "segments": analysis.segments,
        "length": analysis.length_units,
        "per_segment_limit": analysis.per_segment_limit,
        "unencodable": list(analysis.unencodable),
    }


def preview(
    session: Session, fields: FieldMap, message: Any, *, mobile: str, email: str, values: dict[int, object]
) -> dict[str, Any]:
    """The SMS one recipient would receive, with encoding, segments and the characters forcing UCS-2."""
    template = SmsTemplate(snapshot(session, message, require_sender=False), fields)
    try:
        rendered = template.render(email, values)
    except TemplateError as exc:
        raise SmsTemplateInvalid(exc) from None
    except SmsTextError as exc:
        raise InvalidInput(str(exc), field="text") from None
    return {
        "channel": "sms",
        "subject": None,
        "from": rendered.sender_id,
        "to": mobile,
        "html": None,
        "text": rendered.text,
        "sms": analysis_view(rendered.analysis),
    }
