"""The security server: consumer edge, node-to-node transport, provider side, message log."""
