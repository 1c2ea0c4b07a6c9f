"""Pure protocol logic: identifiers, canonical form, envelopes, errors, access policy.

Nothing here imports web frameworks, databases or sockets; time is passed in.
"""
