"""Actions: do a thing, then tell the rooms. The only callers of chat.realtime.broadcaster.

Each action stores (or decides) first and broadcasts after: a message is broadcast once
its batch has committed, before its ack, so a client never sees an ack for a message the
room has not been sent.
"""
