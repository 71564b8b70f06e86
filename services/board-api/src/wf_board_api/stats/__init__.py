"""Stats: the cost ledger and agent performance (`GET /api/stats`)."""
