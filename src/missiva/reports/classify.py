"""Who fetched a pixel or followed a link: a person, a mail-client proxy, or a machine.

Mail-client proxies fetch images for the recipient, not when the recipient reads: Apple Mail Privacy
Protection prefetches every image on delivery, Gmail and Yahoo fetch through their image proxies. Those
opens are flagged `is_proxy` and counted apart. Security scanners (Microsoft Defender, Mimecast,
Proofpoint, Barracuda...) follow every link of a message, usually seconds after delivery, often with
HEAD requests or generic HTTP-library user agents; those clicks are flagged `is_bot`.

What the request alone shows is decided here (`classify_request`). What needs other rows - a click a
few seconds after delivery, several links of one message in the same second - is decided when events
are counted (`missiva.reports.counters`), with `SCANNER_DELAY` and `BURST_LINKS`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

# A click this soon after delivery is a scanner's: no person opens, reads and clicks that fast.
SCANNER_DELAY = timedelta(seconds=10)
# This many different links of one message clicked by one recipient within one second: a scanner.
BURST_LINKS = 3

# Substrings of user agents, lowercased, checked in order.
_PROXY_AGENTS = (
    ("googleimageproxy", "gmail_proxy"),
    ("ggpht.com", "gmail_proxy"),
    ("yahoomailproxy", "yahoo_proxy"),
    ("yahoo! slurp", "yahoo_proxy"),
)
_BOT_AGENTS = (
    "bot",
    "spider",
    "crawler",
    "preview",
    "scanner",
    "barracuda",
    "mimecast",
    "proofpoint",
    "symantec",
    "trendmicro",
    "trend micro",
    "forcepoint",
    "fireeye",
    "cisco",
    "sophos",
    "safelinks",
    "microsoft office existence",
    "ms-office",
    "headlesschrome",
    "phantomjs",
    "python-requests",
    "python-urllib",
    "python-httpx",
    "aiohttp",
    "go-http-client",
    "java/",
    "okhttp",
    "curl/",
    "wget/",
    "libwww",
    "httpclient",
    "node-fetch",
    "axios/",
)
# Networks the proxies fetch from. Apple owns 17.0.0.0/8 (MPP fetches come from Apple's egress
# ranges); Google's image proxy uses the 66.102/66.249/64.233/74.125 blocks; Yahoo 98.136/14 and 74.6/16.
_PROXY_NETWORKS = tuple(
    (ipaddress.ip_network(net), kind)
    for net, kind in (
        ("17.0.0.0/8", "apple_mpp"),
        ("66.102.0.0/20", "gmail_proxy"),
        ("66.249.80.0/20", "gmail_proxy"),
        ("64.233.160.0/19", "gmail_proxy"),
        ("74.125.0.0/16", "gmail_proxy"),
        ("98.136.0.0/14", "yahoo_proxy"),
        ("74.6.0.0/16", "yahoo_proxy"),
    )
)
_MOBILE = ("iphone", "ipad", "android", "mobile")
_EMAIL_CLIENTS = ("thunderbird", "outlook", "microsoft office", "applewebkit/605.1.15 (khtml, like gecko)")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a request looks like: a user-agent class and the two flags events carry."""

    ua_class: str
    is_bot: bool = False
    is_proxy: bool = False


@lru_cache(maxsize=4096)
def _agent_class(user_agent: str) -> tuple[str, bool, bool]:
    agent = user_agent.strip().lower()
    if not agent:
        return "unknown", True, False  # real mail clients and browsers always send one
    if agent == "mozilla/5.0":
        return "apple_mpp", False, True  # Apple MPP's prefetcher sends exactly this
    for needle, kind in _PROXY_AGENTS:
        if needle in agent:
            return kind, False, True
    if any(needle in agent for needle in _BOT_AGENTS):
        return "bot", True, False
    if any(needle in agent for needle in _MOBILE):
        return "mobile", False, False
    if any(needle in agent for needle in _EMAIL_CLIENTS):
        return "email_client", False, False
    return "desktop", False, False


@lru_cache(maxsize=4096)
def _network_class(address: str) -> str | None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    for network, kind in _PROXY_NETWORKS:
        if ip.version == network.version and ip in network:
            return kind
    return None


def classify_request(user_agent: str | None, address: str | None, method: str = "GET") -> Verdict:
    """Classify one pixel fetch or click from what the request shows (agent, address, method)."""
    ua_class, is_bot, is_proxy = _agent_class((user_agent or "")[:512])
    if method.upper() == "HEAD":
        is_bot = True  # browsers and mail clients GET; link checkers HEAD
    if not is_bot and not is_proxy and address:
        network = _network_class(address)
        if network is not None:
            return Verdict(network, False, True)
    return Verdict(ua_class, is_bot, is_proxy)
