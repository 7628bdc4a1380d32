"""The thin shells that run the core's operations: `sync` and `aio`, per backend."""
