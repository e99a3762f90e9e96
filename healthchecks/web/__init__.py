"""The HTTP surface of health: the open /health reads and heartbeat pings (views, pings,
urls), their OpenAPI document, and the checks' API (api)."""
