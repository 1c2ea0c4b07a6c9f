"""Sample registries that play the *service provider information systems* behind the gateway.

They are small, standalone FastAPI apps with their own SQLite databases: the gateway node
reaches them only over plain HTTP on 127.0.0.1, exactly as an X-Road security server
reaches a member's backend. Each registry package has the same layout: ``models.py``
(request and response models), ``storage.py`` (tables, writes, seeding), ``data/`` (seed
data as JSON, shipped as package data) and ``app.py`` (the routes); what they all share
(error and health models, the SQLite engine, the lifespan) is :mod:`registries.common`.

The registry apps use nothing from :mod:`gateway`. The parts that act as X-Road *clients*
take the identifier types from :mod:`gateway.core.ids`: the Gewerberegister's IHK outbox
and the portal. Nothing here imports the sandbox (:mod:`gateway.sandbox`, which starts the
demo cities' registers and portal), and no product package imports the registries: only
the entry point :mod:`gateway.cli` starts them (tests/unit/test_layering.py).
"""
