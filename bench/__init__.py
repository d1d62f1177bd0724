"""`make bench`: speed and memory against the machine's limit (see __main__.py and the README's Speed section)."""
