"""What every listening port shares, below the application: the connection guard
(slow and excess clients, ``guard.py``) and the HTTP/1-only rule of aiohttp's listeners
(``httpversion.py``); and the lean HTTP/1.1 client of the node's hot-path calls
(``http1client.py``)."""
