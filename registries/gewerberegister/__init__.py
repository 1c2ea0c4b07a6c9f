"""Soest's trade register (Gewerberegister) as a sample service provider.

It takes Gewerbeanzeigen (An-, Um- and Abmeldung, shaped after XGewerbeanzeige), keeps the
resulting state of each Betrieb, and answers lookups; see
:func:`registries.gewerberegister.app.create_app`.
"""
