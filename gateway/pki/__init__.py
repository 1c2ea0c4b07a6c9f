"""Development PKI: keys, CSRs, CA issuing, chain checks, OCSP and time stamps as objects.

Pure: no files and no clock of its own; it uses only core's base modules (ADR 0016).
"""
