"""The chamber of commerce's (IHK) endpoint for Gewerbeanzeige notifications.

It receives, stores and lists the notifications the trade office sends under § 14(8)
GewO; see :func:`registries.ihk.app.create_app`.
"""
