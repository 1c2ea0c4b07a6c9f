"""Sample registries that play the *service provider information systems* behind the gateway.

They are deliberately small, standalone FastAPI apps with their own SQLite databases: the
gateway node reaches them only over plain HTTP on 127.0.0.1, exactly as an X-Road security
server reaches a member's backend, so nothing in here imports from :mod:`gateway`.
"""
