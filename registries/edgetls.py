"""How a registry or the portal, as an information system, calls its gateway node's
consumer TLS port: the node's internal certificate to trust and the information-system
certificate registered for its subsystem (connection type ``https``, docs/protocol.md
section 11).

Kept apart from ``registries.common`` so the command-line parser can add these options
without loading the web framework.
"""

from __future__ import annotations

import argparse
import functools
import ssl
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EdgeTls"]


@dataclass(frozen=True, slots=True)
class EdgeTls:
    """TLS to a gateway node's consumer port: ``ca`` (the node's internal TLS
    certificate, or the CA that issued it) is trusted; ``cert``/``key`` are the
    information-system certificate registered for the calling subsystem (none for a
    subsystem whose connection type is ``https-no-auth``)."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None

    def context(self) -> ssl.SSLContext:
        """The client context (built once per set of files)."""
        return _edge_context(self.ca, self.cert, self.key)

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
        """``--{prefix}consumer-ca``, ``--{prefix}client-cert``, ``--{prefix}client-key``."""
        parser.add_argument(
            f"--{prefix}consumer-ca",
            default=None,
            help="the node's internal TLS certificate (PEM) to trust on its consumer TLS port",
        )
        parser.add_argument(
            f"--{prefix}client-cert",
            default=None,
            help="the information-system certificate (PEM) registered for the client",
        )
        parser.add_argument(f"--{prefix}client-key", default=None, help="its private key (PEM)")

    @classmethod
    def from_args(cls, args: argparse.Namespace, prefix: str = "") -> EdgeTls | None:
        """The options of :meth:`add_arguments`; None without a CA (plain HTTP)."""
        attr = prefix.replace("-", "_")
        ca = getattr(args, f"{attr}consumer_ca")
        cert = getattr(args, f"{attr}client_cert")
        key = getattr(args, f"{attr}client_key")
        if (cert is None) != (key is None):
            raise ValueError(f"--{prefix}client-cert and --{prefix}client-key go together")
        if ca is None:
            if cert is not None:
                raise ValueError(f"--{prefix}client-cert needs --{prefix}consumer-ca")
            return None
        return cls(
            Path(ca), None if cert is None else Path(cert), None if key is None else Path(key)
        )


@functools.lru_cache(maxsize=8)
def _edge_context(ca: Path, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None and key is not None:
        context.load_cert_chain(cert, key)
    return context
