"""The web console: pages over the management APIs of the central authority and the node.

It holds no logic of its own: every page is one or a few calls of an admin API, every
form one call, and the API decides what is allowed (docs/console.md, ADR 0039). The
auditor page is the exception that proves it: it runs the offline verifier, which is
pure and needs no API.
"""
