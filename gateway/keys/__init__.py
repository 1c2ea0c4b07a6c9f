"""Key storage: the files a member's, node's or CA's keys and certificates live in, and
the PKCS#11 tokens that hold member signing keys.

Files in ``gateway.keys.files``; keys in a token in ``gateway.keys.pkcs11``, behind the
``ExternalSigningKey`` protocol of ``gateway.core.jws`` so the signing code does not know
where a key lives, while ``gateway.pki`` stays pure (docs/adr/0016, docs/adr/0038).
"""
