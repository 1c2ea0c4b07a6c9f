"""Audit bundles: export a node's message log evidence, verify it offline.

``bundle`` (format, pure), ``verify`` (the offline verifier, pure: time and trust passed
in), ``export`` (reads a log file), ``anchor`` (reads the trust anchor file), ``bench``
(measures the verifier). Format and checks: docs/audit-bundle.md.
"""
