"""The security server: consumer side (client proxy), provider side (server proxy), metadata
services, the node-to-node transport, and the wiring that starts and refreshes them."""
