"""CLI commands that live beside their feature. Each module here decorates functions with
`@cli.command()` (from chunksync.cli); cli.py imports every module of this package. A few hold
what the commands share instead (ids: id prefixes; output: the JSON shapes)."""
