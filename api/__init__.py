"""The thin HTTP API: validates, publishes to Kafka, answers 202; reads decisions back."""
