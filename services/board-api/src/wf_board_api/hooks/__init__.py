"""/api/hooks: inbound webhooks (wf_common.hooks) — manage them, and receive signed deliveries."""
