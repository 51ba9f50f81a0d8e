"""Stage 1, seed: members resolved to folders, checked compatible, found by a Hub query or a webhook."""
