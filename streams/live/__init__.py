"""The live side of tactful: the Kafka workers and what runs next to them (reading decision topics back, ...)."""
