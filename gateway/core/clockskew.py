"""How far the node's clock is from a time-stamping authority's, measured per token.

A node records its own time on each log entry, while the tree head covering it carries
the TSA's genTime; a node clock ahead of the TSA's puts entries after their head, which
an auditor rejects (``logged_after_head``). The node therefore compares its clock with
every genTime it gets. The token was made somewhere between the node's reading before
the request and its reading after the answer, so only a genTime outside that window
proves a skew, and the skew counted is the least one consistent with the round trip:
a slow TSA never makes a correct clock look skewed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

__all__ = ["clock_skew"]


def clock_skew(asked_at: datetime, answered_at: datetime, gen_time: datetime) -> timedelta:
    """The node's time minus the TSA's genTime, round trip taken out.

    Positive when the node's clock is ahead (genTime before the request left), negative
    when it is behind (genTime after the answer arrived), zero inside the window.
    """
    if answered_at < asked_at:
        raise ValueError("the answer cannot arrive before the request was sent")
    if gen_time < asked_at:
        return asked_at - gen_time
    if gen_time > answered_at:
        return answered_at - gen_time
    return timedelta(0)
