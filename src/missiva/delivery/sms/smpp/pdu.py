"""SMPP 3.4 protocol data units: the few the ESME and our test SMSC exchange, encoded and decoded.

Written against the SMPP v3.4 specification (issue 1.2): a 16-octet header (command_length,
command_id, command_status, sequence_number) and a body of C-octet strings, integers and optional
TLV parameters. Only what the transport needs is covered: binds, submit_sm, deliver_sm (shared body
layout), their responses, enquire_link, unbind, generic_nack.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field
from enum import IntEnum

HEADER = struct.Struct(">IIII")
HEADER_SIZE = HEADER.size

#: Refuse anything larger: a real submit_sm/deliver_sm is under 1 KiB even with message_payload TLVs.
MAX_PDU_LENGTH = 64 * 1024

INTERFACE_VERSION = 0x34
RESPONSE_BIT = 0x80000000


class CommandId(IntEnum):
    """SMPP 3.4 command ids used here (section 5.1.2.1)."""

    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015


class Status(IntEnum):
    """command_status values (section 5.1.3) this code produces or reacts to."""

    ROK = 0x00000000
    RINVMSGLEN = 0x00000001
    RINVCMDLEN = 0x00000002
    RINVCMDID = 0x00000003
    RINVBNDSTS = 0x00000004
    RALYBND = 0x00000005
    RSYSERR = 0x00000008
    RINVSRCADR = 0x0000000A
    RINVDSTADR = 0x0000000B
    RBINDFAIL = 0x0000000D
    RINVPASWD = 0x0000000E
    RINVSYSID = 0x0000000F
    RMSGQFUL = 0x00000014
    RTHROTTLED = 0x00000058
    RX_T_APPN = 0x00000064
    RUNKNOWNERR = 0x000000FF


class Tag(IntEnum):
    """Optional parameter tags (section 5.3.2) read or written here."""

    RECEIPTED_MESSAGE_ID = 0x001E
    SAR_MSG_REF_NUM = 0x020C
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    MESSAGE_STATE = 0x0427


#: esm_class bits: UDH indicator, and the message-type field of a deliver_sm.
ESM_UDHI = 0x40
ESM_TYPE_MASK = 0x3C
ESM_DELIVERY_RECEIPT = 0x04
ESM_INTERMEDIATE_NOTIFICATION = 0x20

#: registered_delivery: receipt on final outcome, success or failure.
REGISTERED_DELIVERY_FINAL = 0x01


class PduError(ValueError):
    """A PDU that does not follow the SMPP 3.4 layout; the message names the field at fault."""


@dataclass(frozen=True, slots=True)
class Pdu:
    """One PDU: header fields and the raw body, decoded further by the body classes below."""

    command_id: int
    command_status: int
    sequence_number: int
    body: bytes = b""

    def encode(self) -> bytes:
        """Wire form, header included."""
        header = HEADER.pack(
            HEADER_SIZE + len(self.body), self.command_id, self.command_status, self.sequence_number
        )
        return header + self.body

    @property
    def is_response(self) -> bool:
        """Responses (and generic_nack) have the high bit of command_id set."""
        return bool(self.command_id & RESPONSE_BIT)


def decode(data: bytes) -> Pdu:
    """Decode one complete PDU (header and body) from ``data``."""
    if len(data) < HEADER_SIZE:
        raise PduError(f"PDU of {len(data)} octets is shorter than the 16-octet header")
    length, command_id, status, sequence = HEADER.unpack_from(data)
    if length != len(data):
        raise PduError(f"command_length says {length} octets but {len(data)} were given")
    return Pdu(command_id, status, sequence, bytes(data[HEADER_SIZE:]))


async def read_pdu(reader: asyncio.StreamReader) -> Pdu:
    """Read the next PDU from a stream; ``asyncio.IncompleteReadError`` at end of stream."""
    header = await reader.readexactly(HEADER_SIZE)
    length, command_id, status, sequence = HEADER.unpack(header)
    if not HEADER_SIZE <= length <= MAX_PDU_LENGTH:
        raise PduError(f"command_length {length} outside {HEADER_SIZE}..{MAX_PDU_LENGTH}")
    body = await reader.readexactly(length - HEADER_SIZE) if length > HEADER_SIZE else b""
    return Pdu(command_id, status, sequence, body)


class PduStream:
    """Cuts a byte stream into PDUs: feed what the socket gave, get every complete PDU in it.

    One read of the socket can hold dozens of PDUs; parsing them from one buffer costs far less than
    two awaited reads per PDU.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Pdu]:
        """Append ``data``; return the PDUs now complete, in order."""
        buffer = self._buffer
        buffer += data
        pdus: list[Pdu] = []
        pos, size = 0, len(buffer)
        while size - pos >= HEADER_SIZE:
            length, command_id, status, sequence = HEADER.unpack_from(buffer, pos)
            if not HEADER_SIZE <= length <= MAX_PDU_LENGTH:
                raise PduError(f"command_length {length} outside {HEADER_SIZE}..{MAX_PDU_LENGTH}")
            if size - pos < length:
                break
            pdus.append(Pdu(command_id, status, sequence, bytes(buffer[pos + HEADER_SIZE : pos + length])))
            pos += length
        del buffer[:pos]
        return pdus


# --- body primitives -------------------------------------------------------------------------------


def _cstring(value: str, name: str, max_octets: int) -> bytes:
    """A C-octet string: ASCII text and a NUL, ``max_octets`` counting the NUL (as the spec does)."""
    try:
        raw = value.encode("ascii")
    except UnicodeEncodeError as exc:
        raise PduError(f"{name} {value!r} must be ASCII") from exc
    if b"\x00" in raw or len(raw) + 1 > max_octets:
        raise PduError(f"{name} {value!r} must be at most {max_octets - 1} characters without NUL")
    return raw + b"\x00"


class _BodyReader:
    """Cursor over a PDU body that names the field when the body is short or malformed."""

    def __init__(self, body: bytes, what: str) -> None:
        self.body = body
        self.pos = 0
        self.what = what

    def cstring(self, name: str, max_octets: int) -> str:
        end = self.body.find(b"\x00", self.pos, self.pos + max_octets)
        if end < 0:
            raise PduError(f"{self.what}: {name} is not NUL-terminated within {max_octets} octets")
        raw = self.body[self.pos : end]
        self.pos = end + 1
        return raw.decode("ascii", errors="replace")

    def u8(self, name: str) -> int:
        if self.pos >= len(self.body):
            raise PduError(f"{self.what}: body ends before {name}")
        value = self.body[self.pos]
        self.pos += 1
        return value

    def octets(self, name: str, count: int) -> bytes:
        if self.pos + count > len(self.body):
            raise PduError(f"{self.what}: {name} needs {count} octets, {len(self.body) - self.pos} left")
        value = self.body[self.pos : self.pos + count]
        self.pos += count
        return value

    def tlvs(self) -> tuple[tuple[int, bytes], ...]:
        found: list[tuple[int, bytes]] = []
        while self.pos < len(self.body):
            header = self.octets("TLV header", 4)
            tag, length = struct.unpack(">HH", header)
            found.append((tag, self.octets(f"TLV 0x{tag:04x} value", length)))
        return tuple(found)


def encode_tlvs(tlvs: tuple[tuple[int, bytes], ...]) -> bytes:
    """Optional parameters in wire form."""
    return b"".join(struct.pack(">HH", tag, len(value)) + value for tag, value in tlvs)


# --- bodies -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bind:
    """bind_transmitter / bind_receiver / bind_transceiver body (section 4.1)."""

    system_id: str
    password: str
    system_type: str = ""
    interface_version: int = INTERFACE_VERSION
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""

    def encode(self) -> bytes:
        """Body octets."""
        return b"".join(
            (
                _cstring(self.system_id, "system_id", 16),
                _cstring(self.password, "password", 9),
                _cstring(self.system_type, "system_type", 13),
                bytes((self.interface_version, self.addr_ton, self.addr_npi)),
                _cstring(self.address_range, "address_range", 41),
            )
        )

    @classmethod
    def decode(cls, body: bytes) -> Bind:
        """Parse a bind body."""
        r = _BodyReader(body, "bind")
        return cls(
            system_id=r.cstring("system_id", 16),
            password=r.cstring("password", 9),
            system_type=r.cstring("system_type", 13),
            interface_version=r.u8("interface_version"),
            addr_ton=r.u8("addr_ton"),
            addr_npi=r.u8("addr_npi"),
            address_range=r.cstring("address_range", 41),
        )


@dataclass(frozen=True, slots=True)
class ShortMessage:
    """submit_sm / deliver_sm body (sections 4.4.1 and 4.6.1 share the layout)."""

    source_addr: str
    destination_addr: str
    short_message: bytes = b""
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    tlvs: tuple[tuple[int, bytes], ...] = field(default=())

    def encode(self) -> bytes:
        """Body octets."""
        if len(self.short_message) > 254:
            raise PduError(f"short_message of {len(self.short_message)} octets exceeds 254")
        return b"".join(
            (
                _cstring(self.service_type, "service_type", 6),
                bytes((self.source_addr_ton, self.source_addr_npi)),
                _cstring(self.source_addr, "source_addr", 21),
                bytes((self.dest_addr_ton, self.dest_addr_npi)),
                _cstring(self.destination_addr, "destination_addr", 21),
                bytes((self.esm_class, self.protocol_id, self.priority_flag)),
                _cstring(self.schedule_delivery_time, "schedule_delivery_time", 17),
                _cstring(self.validity_period, "validity_period", 17),
                bytes(
                    (
                        self.registered_delivery,
                        self.replace_if_present_flag,
                        self.data_coding,
                        self.sm_default_msg_id,
                        len(self.short_message),
                    )
                ),
                self.short_message,
                encode_tlvs(self.tlvs),
            )
        )

    @classmethod
    def decode(cls, body: bytes, what: str = "submit_sm") -> ShortMessage:
        """Parse a submit_sm or deliver_sm body."""
        r = _BodyReader(body, what)
        service_type = r.cstring("service_type", 6)
        source_ton, source_npi = r.u8("source_addr_ton"), r.u8("source_addr_npi")
        source = r.cstring("source_addr", 21)
        dest_ton, dest_npi = r.u8("dest_addr_ton"), r.u8("dest_addr_npi")
        dest = r.cstring("destination_addr", 21)
        esm_class, protocol_id, priority = r.u8("esm_class"), r.u8("protocol_id"), r.u8("priority_flag")
        schedule = r.cstring("schedule_delivery_time", 17)
        validity = r.cstring("validity_period", 17)
        registered, replace = r.u8("registered_delivery"), r.u8("replace_if_present_flag")
        data_coding, default_id = r.u8("data_coding"), r.u8("sm_default_msg_id")
        message = r.octets("short_message", r.u8("sm_length"))
        return cls(
            source_addr=source,
            destination_addr=dest,
            short_message=message,
            service_type=service_type,
            source_addr_ton=source_ton,
            source_addr_npi=source_npi,
            dest_addr_ton=dest_ton,
            dest_addr_npi=dest_npi,
            esm_class=esm_class,
            protocol_id=protocol_id,
            priority_flag=priority,
            schedule_delivery_time=schedule,
            validity_period=validity,
            registered_delivery=registered,
            replace_if_present_flag=replace,
            data_coding=data_coding,
            sm_default_msg_id=default_id,
            tlvs=r.tlvs(),
        )

    def tlv(self, tag: int) -> bytes | None:
        """Value of the first optional parameter with ``tag``, if present."""
        for found, value in self.tlvs:
            if found == tag:
                return value
        return None

    @property
    def payload(self) -> bytes:
        """The user data: ``short_message``, or the message_payload TLV when short_message is empty."""
        if self.short_message:
            return self.short_message
        return self.tlv(Tag.MESSAGE_PAYLOAD) or b""


def encode_message_id(message_id: str) -> bytes:
    """Body of submit_sm_resp / deliver_sm_resp."""
    return _cstring(message_id, "message_id", 65)


def decode_message_id(body: bytes) -> str:
    """message_id from a submit_sm_resp body (empty when the SMSC sent no body, as on errors)."""
    if not body:
        return ""
    return _BodyReader(body, "submit_sm_resp").cstring("message_id", 65)


def encode_system_id(system_id: str) -> bytes:
    """Body of a bind_*_resp."""
    return _cstring(system_id, "system_id", 16)
