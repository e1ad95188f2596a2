"""RC4, as MailUp's "encrypted" webhooks use it (RC4 with the shared key, then Base64).

RC4 is broken and only here for compatibility with receivers already deployed (MailUp's Magento and
Joomla modules). cryptography's `decrepit` ARC4 only accepts keys of 5, 7, 8, 10, 16, 20, 24 or 32 bytes,
while MailUp keys are whatever the customer typed, so this small implementation of the published
algorithm (key scheduling, then the keystream XOR) is used instead.
"""

from __future__ import annotations


def rc4(key: bytes, data: bytes) -> bytes:
    """RC4 keystream XOR `data` (the same call encrypts and decrypts). Keys of 1 to 256 bytes."""
    if not 1 <= len(key) <= 256:
        raise ValueError("an RC4 key must be 1 to 256 bytes long")
    state = list(range(256))
    j = 0
    for i in range(256):
        j = (j + state[i] + key[i % len(key)]) & 0xFF
        state[i], state[j] = state[j], state[i]
    out = bytearray(len(data))
    i = j = 0
    for n, byte in enumerate(data):
        i = (i + 1) & 0xFF
        j = (j + state[i]) & 0xFF
        state[i], state[j] = state[j], state[i]
        out[n] = byte ^ state[(state[i] + state[j]) & 0xFF]
    return bytes(out)
