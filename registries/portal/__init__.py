"""Digitales Gewerbeamt: Soest's online trade office, the citizen's side of the gateway.

A citizen signs in, applies for a Gewerbeanmeldung whose personal data the portal reads
from the Melderegister through Soest's gateway node (once-only), reviews and confirms
them, and gets a receipt; "Meine Daten" shows who read her data. See docs/portal.md.
"""
