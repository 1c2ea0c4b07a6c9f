"""Sample registries that play the *service provider information systems* behind the gateway.

They are deliberately small, standalone FastAPI apps with their own SQLite databases: the
gateway node reaches them only over plain HTTP on 127.0.0.1, exactly as an X-Road security
server reaches a member's backend. They use the product's identifiers
(:mod:`gateway.core.ids`) to name the services they call through a node, and nothing of
the sandbox (:mod:`gateway.sandbox`); no product package imports them, only the entry
point :mod:`gateway.cli` starts them (tests/unit/test_layering.py).
"""
