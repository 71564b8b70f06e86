"""`make bench`: JetStream latency, orchestration overhead and pipeline throughput on this machine."""
