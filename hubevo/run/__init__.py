"""The orchestrator: the loop and what surrounds it. Only this package knows the live `Run`.

- `run`: `Run` (config, state, resolver, strategy, runner) and `start`, which checks and opens a run;
- `generation`: one generation: ask, evaluate (or race), tell, finals, select;
- `estimation`: cheap fitness: who is scored in full, the generation's estimator, a drifting leader completed;
- `survivors`: survivors to disk, held-out scores, the Hub push; `summary`: a generation's line;
- `loop`: `evolve`, the stages in the order of the papers' figure;
- `tracking`: each generation's numbers sent to experiment trackers (trackio, wandb, tensorboard);
- `preflight` (the machine checked before the lock), `lock` (one process per run folder),
  `scheduler` (continuous mode with apscheduler), `state_sync` (the run state kept on the Hub).
"""
