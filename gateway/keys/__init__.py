"""Key storage: the files a member's, node's or CA's keys and certificates live in.

Files today (``gateway.keys.files``); hardware tokens would join here, behind the same
load and write functions, while ``gateway.pki`` stays pure (docs/adr/0016).
"""
