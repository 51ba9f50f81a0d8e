"""Stage 2, evaluate: a candidate scored through lm-evaluation-harness, and what the run records of it.

- `tasks`: the run's lm-eval tasks found and checked before any model loads (`guard`: no selection on
  well-known test sets; `taskcheck`: data files, metrics and arguments), and their document counts;
- `plan`: which examples each scoring reads (the fitness sample, validation, racing's order; pure);
- `scorer`: one `simple_evaluate` on a loaded model, one HFLM per resident model;
- `lm_eval_fence`: every use of lm-eval's private API, patched only inside a scoring call;
- `fitness`: scores read from lm-eval's results and combined into one fitness (pure);
- `evaluator`: the three scorings of a run (fitness, validation, held-out) over the above;
- `records`: what an evaluation records (`Evaluation`, per-example outcomes with their document indices);
- `outcomes`: several candidates' outcomes aligned on the examples all of them scored (pure);
- `estimator`, `irt`: cheap fitness, a fitness estimated from part of the sample with its error (pure).
"""
