"""/api/sync/*: the sync bridge's state (read from its schema) and its operations (wf.sync.<op>)."""
