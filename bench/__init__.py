"""Benchmarks of the portal on real PostgreSQL and a real HTTP server; see bench/README.md."""
