"""VERP addresses: round trip, case folding, and refusal of anything we did not mint."""

import pytest

from missiva.inbound import verp

SECRET = b"test-verp-secret"


def test_encode_gives_a_tagged_address_that_decodes_back_to_the_ids():
    address = verp.encode(123, 456, local="bounces", domain="bounce.example.com", secret=SECRET)

    local, domain = address.split("@")
    prefix, _, rest = local.partition("+")
    mailing, recipient, tag = rest.split(".")
    assert (prefix, domain, mailing, recipient) == ("bounces", "bounce.example.com", "m123", "r456")
    assert 8 <= len(tag) <= 12 and set(tag) <= set("abcdefghijklmnopqrstuvwxyz234567")
    assert verp.decode(address, secret=SECRET) == (123, 456)


def test_decode_survives_an_mta_that_changes_case_or_adds_brackets():
    address = verp.encode(7, 99999999, local="b", domain="example.org", secret=SECRET)

    assert verp.decode(address.upper(), secret=SECRET) == (7, 99999999)
    assert verp.decode(f" <{address}> ", secret=SECRET) == (7, 99999999)


def test_each_recipient_gets_a_different_tag():
    a = verp.encode(1, 1, local="b", domain="example.org", secret=SECRET)
    b = verp.encode(1, 2, local="b", domain="example.org", secret=SECRET)

    assert a.split(".")[-2] != b.split(".")[-2]


@pytest.mark.parametrize(
    "forge",
    [
        lambda a: a.replace("r456", "r457"),  # someone else's recipient id with our tag
        lambda a: a.replace("m123", "m124"),
        lambda a: a[: a.index("@") - 1] + ("a" if a[a.index("@") - 1] != "a" else "b") + a[a.index("@") :],
        lambda a: a[: a.index("@") - 3] + a[a.index("@") :],  # truncated tag
        lambda a: a.split("+")[0] + "@" + a.split("@")[1],  # no VERP part at all
        lambda a: "not an address",
        lambda a: "",
    ],
)
def test_decode_refuses_tampered_or_foreign_addresses(forge):
    address = verp.encode(123, 456, local="bounces", domain="bounce.example.com", secret=SECRET)

    assert verp.decode(forge(address), secret=SECRET) is None


def test_decode_refuses_an_address_minted_with_another_secret():
    address = verp.encode(123, 456, local="bounces", domain="bounce.example.com", secret=b"other")

    assert verp.decode(address, secret=SECRET) is None
    assert verp.decode(address, secret=b"") is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"mailing_id": -1, "recipient_id": 1}, "non-negative"),
        ({"local": "bou+nces"}, "local part"),
        ({"local": "has space"}, "local part"),
        ({"domain": "bad_domain..com"}, "domain"),
        ({"secret": b""}, "secret"),
    ],
)
def test_encode_rejects_arguments_that_cannot_make_a_valid_address(args, message):
    kwargs = {
        "mailing_id": 1,
        "recipient_id": 2,
        "local": "bounces",
        "domain": "example.com",
        "secret": SECRET,
    }
    kwargs.update(args)

    with pytest.raises(verp.VerpError, match=message):
        verp.encode(kwargs.pop("mailing_id"), kwargs.pop("recipient_id"), **kwargs)
