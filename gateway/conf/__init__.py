"""Routing and trust: which nodes exist, whom they host, which CAs and groups count."""
