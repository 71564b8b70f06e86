"""Database schema shared by the orchestrator (the only writer) and the board API (reads only)."""
