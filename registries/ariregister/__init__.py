"""Estonia's e-Business Register (Äriregister), a small sample of it for the EE-TEST instance.

It answers the company data a German trade office needs when an Estonian company opens a
branch: name, registry code, legal form, address, status and board members; see
:func:`registries.ariregister.app.create_app`.
"""
