"""Helpers of the plain-chat walk's tests: an answer or a refusal as one comparable value, and whether a chat
went the general (rendering) way."""

from __future__ import annotations

from tokend.errors import ChatRequestError


def outcome(function):
    """``function()``, or ("refused", message) for a ChatRequestError: the walk and the general path agree on both."""
    try:
        return function()
    except ChatRequestError as error:
        return ("refused", str(error))


def takes_general_path(encoder, monkeypatch, messages, plain) -> bool:
    """Whether ``encoder.count_chat(messages)`` renders, once the plain counter is built by counting ``plain``."""
    encoder.count_chat(plain)  # builds the plain counter
    taken = []
    general = encoder._count_rendered
    monkeypatch.setattr(encoder, "_count_rendered", lambda *arguments: taken.append(1) or general(*arguments))
    outcome(lambda: encoder.count_chat(messages))
    return bool(taken)
