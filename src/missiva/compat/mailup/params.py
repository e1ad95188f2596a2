"""Reading MailUp frontend parameters the way real clients send them.

Clients use any case for names, GET or POST, query strings, urlencoded or multipart bodies, and some
POST a body that was never URL-encoded (spaces, `&` and UTF-8 bytes as typed). Query and body are
merged, names folded to lower case, and empty values dropped (clients send `Sms=` they do not use).
"""

from __future__ import annotations

from urllib.parse import unquote_plus

from starlette.datastructures import UploadFile
from starlette.requests import Request

MAX_BODY = 256 * 1024


class BadRequest(Exception):
    """The request body cannot be read as parameters."""


async def read_params(request: Request) -> dict[str, str]:
    """All parameters of a frontend call, lower-cased names, empty values removed."""
    params: dict[str, str] = {}
    _merge(params, _parse_pairs(request.scope.get("query_string", b"")))
    if request.method == "POST":
        content_type = request.headers.get("content-type", "").lower()
        if content_type.startswith("multipart/form-data"):
            form = await request.form(max_files=0, max_fields=200)
            _merge(params, [(k, v) for k, v in form.multi_items() if not isinstance(v, UploadFile)])
        else:
            body = await request.body()
            if len(body) > MAX_BODY:
                raise BadRequest("request body too large")
            _merge(params, _parse_pairs(body))
    return params


def _merge(params: dict[str, str], pairs: list[tuple[str, str]]) -> None:
    for key, value in pairs:
        name = key.strip().lower()
        if not name:
            continue
        value = value.strip() if isinstance(value, str) else value
        if value == "":
            continue
        params.setdefault(name, value)


def _parse_pairs(raw: bytes) -> list[tuple[str, str]]:
    """Split `a=1&b=2`, tolerating values that contain a raw `&` (a piece with no `=` continues
    the previous value) and decoding bytes as UTF-8 whatever the client claimed."""
    text = raw.decode("utf-8", "replace")
    pairs: list[list[str]] = []
    for piece in text.split("&"):
        if "=" in piece:
            name, _, value = piece.partition("=")
            pairs.append([name, value])
        elif pairs and piece:
            pairs[-1][1] += "&" + piece
    return [
        (
            unquote_plus(n, encoding="utf-8", errors="replace"),
            unquote_plus(v, encoding="utf-8", errors="replace"),
        )
        for n, v in pairs
    ]


def truthy(value: str | None, default: bool) -> bool:
    """MailUp booleans: `1`/`0`, `true`/`false` in any case."""
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on", "-1")


def int_list(value: str | None, seps: str = ",;") -> list[int]:
    """`1,2` or `1;2` as integers; ValueError on anything else."""
    if not value:
        return []
    for sep in seps[1:]:
        value = value.replace(sep, seps[0])
    return [int(part) for part in value.split(seps[0]) if part.strip()]
