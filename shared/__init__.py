"""Code that both the API and the worker import: contracts, config, the Redis gate, the ledger."""
