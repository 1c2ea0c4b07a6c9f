"""A node's settings: clients, services, access rights and local groups, changed while it runs.

* ``model``: :class:`NodeSettings`, one consistent version, its JSON document and TOML;
* ``mutations``: the pure changes the management API and the CLI apply;
* ``snapshot``: :class:`SettingsSnapshot`, what an exchange reads once at admission;
* ``manager``: :class:`SettingsManager`, which records each change in the log before it
  is in force;
* ``source``: which version a node starts with, and the difference of two.

See docs/deployment.md ("Settings") and docs/adr/0030-node-settings-in-the-log.md.
"""
