"""Dependencies as shared state: what a fleet of workers on many machines must respect together.

A dependency is what a queue's source leans on (an IMAP account, an API host). Each one is a row
of the database: its gate (open, stressed with one probe per interval for the whole fleet, or
closed by an operator), its retry budget's tokens, its rate limit's state and its concurrency
cap. `model` holds the declared limits and the state as plain data, `gate` the pure rules that
change the state, and `store` reads and writes the rows, in the same transaction as the claim
that acts on them.
"""
