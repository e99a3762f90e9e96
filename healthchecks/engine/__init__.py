"""The engine: claiming due checks (scheduling), probing a batch (batches), judging whether
an outcome can be trusted (trust) and whether the checker keeps up (capacity), recording
results and moving states (recording, service_health), and counting what it did (counters)."""
