"""The sandbox: everything that stands up a federation to show, test or measure the product.

A loopback federation in real processes (:mod:`~gateway.sandbox.localnet`) with the demo
cities (:mod:`~gateway.sandbox.cities`) and the portal's processes
(:mod:`~gateway.sandbox.federation`), the demo (``gateway demo``, whose ``--serve``
restarts a process that dies: :mod:`~gateway.sandbox.supervisor`), the compose set-up
(``gateway setup``) and the benchmarks (``gateway bench``, ``gateway audit bench``).

The sandbox may import the product and ``registries/``; no product package imports the
sandbox, and only the entry point :mod:`gateway.cli` reaches it, from inside its
functions (tests/unit/test_layering.py; docs/adr/0017-product-apart-from-its-sandbox.md).
"""
