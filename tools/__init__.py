"""Client-side tools: the hostile-input corpus, the soak load generator and the fuzzing harness."""
