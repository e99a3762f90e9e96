"""What is read from the engine's records: the /health documents (reports, healthjson),
history and uptime, availability by time, predictions, and the Prometheus exposition."""
