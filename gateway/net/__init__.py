"""What every listening port shares: the connection guard (gateway/net/guard.py)."""
