"""Durable storage schema for a node.

The message log is the node's evidence of every exchange it took part in, so its schema
lives in one place (``models``) and both the write path and the read tools derive from it.
"""
