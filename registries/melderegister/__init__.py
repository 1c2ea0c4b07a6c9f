"""Lippstadt's population register (Melderegister) as a sample service provider.

It answers the automated *einfache Behördenauskunft* of BMG § 38 and nothing more; see
:func:`registries.melderegister.app.create_app`.
"""
