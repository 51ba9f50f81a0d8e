"""The hubevo Space: a Gradio app over finished and running evolutions.

- `loading`: a run directory or a results dataset -> `RunData`; `catalog`: the runs shown, re-read
  when they change; `settings`: deployment settings from the environment;
- `ranking`: the core's one ordering rule over results tables (best first, the champion);
- `verdict`: why a model is or is not the champion, in the words the run recorded (`champion.json`);
  `numbers`: how every page writes a score (3 decimals, ± its standard error where known);
- the tabs' views, pure functions of `RunData`: `leaderboard` (and the keys that pick a model),
  `tree` (a model's ancestors and their picture), `progress` (per-generation stats and chart),
  `front` (the run's Pareto front), `detail` (a model's scores, verdict, use, stored recipe and card),
  `status` (one row per run), `compare` (two models side by side with a recipe diff, and each run's
  champion with its recorded reason);
- `auth`: who may seed, pause and stop runs (allow-listed Hugging Face login or an admin token);
- `seeding`: the seeding form -> a validated run config;
- `controller`: what the UI asks of the scheduler;
- `ui`: the Gradio Blocks, `build_app`, and `serve` (binds 127.0.0.1 unless told otherwise).

Importing this package imports no Gradio; `from space.ui import build_app` does.
"""
