"""Tasks, handoffs, bugs and feedback in the database: reading facts, applying decisions, commands."""
