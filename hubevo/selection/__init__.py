"""Stage 3, select (pure): who is better, and who is the champion.

- `ranking`: the one ordering rule and the champion rule (`evidence`) every view uses;
- `order`: evaluations of any status in order (racing's raced-out ones after the full ones);
- `parents`: EvoMerge's parent selection (roulette or tournament, with random picks, and elites);
- `pareto`: Pareto fronts over the per-task scores.
"""
