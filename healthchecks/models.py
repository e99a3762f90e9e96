# Checks, results, status history and rollups arrive with the health-check engine.
