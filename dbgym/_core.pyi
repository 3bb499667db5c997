# Type stubs for the Rust extension (rust/python/). Keep in step with it.

__version__: str
