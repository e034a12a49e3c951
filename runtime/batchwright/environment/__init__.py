"""The environment half of the pairing: the descriptor the constructs publish, the
instance capacity table, and (later) discovery, routing and fit checks."""
