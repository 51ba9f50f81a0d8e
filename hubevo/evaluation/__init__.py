"""Stage 2, evaluate: scores through lm-evaluation-harness, and what an evaluation records."""
