"""Once-only data exchange gateway: X-Road style security servers for municipal registries."""
