"""Broker connectors: Redis Streams (default), NATS JetStream and Kafka behind `produce()`."""
