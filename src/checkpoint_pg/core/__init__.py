"""The I/O-free core: encoding values, planning rows, assembling checkpoints.

Nothing in this package touches a connection; the savers in
`checkpoint_pg.shells` run the statements the core plans.
"""
