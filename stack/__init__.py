"""The local stack without Docker: Kafka (KRaft) and Kafka Connect from Maven Central jars, moto as DynamoDB.

Entry points: `nudge stack up|down|status|logs|fetch` and `nudge topics` (stack/cli.py), the launcher
(stack/launcher.py) that tests/integration/conftest.py also calls. See stack/README.md.
"""
