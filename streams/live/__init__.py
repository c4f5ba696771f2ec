"""The live side of tactful: what runs next to the Kafka workers (the Redis suppression mirror, ...)."""
