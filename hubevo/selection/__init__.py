"""Stage 3, select: the one ranking rule and the champion, parent selection, Pareto fronts (pure)."""
