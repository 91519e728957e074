"""Statistics on tidy per-image scores: hypothesis tests, bootstrap intervals (:mod:`.tests`) and the
psychometric reliability of XAI metrics (:mod:`.reliability`)."""
