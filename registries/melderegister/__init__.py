"""A municipal population register (Melderegister) as a sample service provider.

It answers the automated *einfache Behördenauskunft* of BMG § 38 and the § 34
Datenübermittlung; one app serves Lippstadt or Iserlohn (``city``), see
:func:`registries.melderegister.app.create_app`. :mod:`registries.melderegister.idnr`
checks the steuerliche Identifikationsnummer that names data subjects.
"""
