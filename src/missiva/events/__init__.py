"""Outbound events: webhook endpoints, the durable outbox, the dispatcher and the polling feed.

Audience changes reach the customer's systems two ways: pushed to webhook endpoints (native signed JSON
or MailUp-compatible form calls) from an outbox written in the change's own transaction, or pulled from
the event feed.
"""
