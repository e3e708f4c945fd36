"""Kafka Connect: nudgestream's DynamoDB sink plugin (Java, Maven) and its install/registration."""
