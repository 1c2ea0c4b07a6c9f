"""What every listening port shares, below the application: the connection guard
(slow and excess clients, ``guard.py``) and the HTTP/1-only rule of aiohttp's listeners
(``httpversion.py``)."""
