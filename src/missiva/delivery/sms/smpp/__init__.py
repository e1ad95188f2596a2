"""SMPP 3.4: PDU codec, receipt parsing and the asyncio ESME client."""
