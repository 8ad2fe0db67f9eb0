"""The finalizer worker: Kafka consumer group -> Redis gate -> PostgreSQL ledger."""
