"""Run configuration: the categorised schema, prefabs, diffs, cost/memory estimates and machine guardrails."""
