"""HTTP API: routers and wire schemas. Business rules live in services and domain."""
