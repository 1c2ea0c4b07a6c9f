"""The central registry's schema migrations (Alembic), run by ``gateway central db upgrade``
through :func:`gateway.central.db.upgrade`; their version table is
``central_alembic_version`` (docs/adr/0047-central-registry-on-postgresql.md)."""
