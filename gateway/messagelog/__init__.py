"""The message log: the node's durable evidence of every exchange, in one package.

``schema`` (the tables), ``writer`` (group commit), ``proofs`` (tree heads, proofs and
side tables read back), ``policy`` (which bodies are kept), ``timestamper``, ``witness``,
``auditor`` (the auditor API), ``tracker`` (the data tracker) and ``confhistory`` (the
configuration history). See docs/message-log.md.
"""
