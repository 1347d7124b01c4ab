"""The webhook endpoint: verify, parse, store, acknowledge."""
