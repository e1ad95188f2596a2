"""SMS transport layer: text analysis, SMPP and HTTP gateway transports, failover, inbound keywords.

No database here: transports report what the SMSC said (:class:`SubmitResult`, :class:`NotSent`,
:class:`Uncertain`, :class:`Rejected`, :class:`Receipt`, :class:`InboundSms`) and the send ledger
decides what to record and whether a message may be tried again.
"""
