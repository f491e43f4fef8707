"""Channels: email, SMS, push and webhook senders behind one ``send`` protocol (see issue 6)."""

__all__: list[str] = []
