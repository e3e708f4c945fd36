"""Pure domain logic: events, features, rules and evaluation. No Kafka, Faust, HTTP or Avro imports here."""
