"""The CA side: its directory and revocation database, and its OCSP responder and TSA.

``ca_store`` and ``revocation`` are the CA's files (ADR 0016); ``service`` serves the
OCSP responder and the time-stamping authority over HTTP.
"""
