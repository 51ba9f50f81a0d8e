"""The hubevo Space: a Gradio app over finished and running evolutions, in three packages, lowest first.

- `data`: reading runs and their numbers. `loading` (a run directory or a results dataset -> `RunData`),
  `catalog` (the runs shown, re-read when they change), `status` (each run's status, found or managed),
  `ranking` (the core's one ordering rule: best first, the champion), `verdict` (why a model is or is not
  the champion, in the words the run recorded), `numbers` (how every page writes a score or a duration);
- `pages`: the tabs' views, pure functions of `RunData`. `leaderboard` (and the keys that pick a model),
  `compare` (two models side by side, each run's champion with its recorded reason), `tree` (a model's
  ancestors and their picture), `progress` (per-generation stats and chart), `front` (the run's Pareto
  front), `detail` (a model's scores, verdict, use, stored recipe and card), `status_table` (one row per run);
- `controls`: who may act and what they do. `auth` (allow-listed Hugging Face login or an admin token),
  `seeding` (the seeding form -> a validated run config), `jobs` (a seeded run as a Hugging Face Job),
  `controller` (what the UI asks of the scheduler), `settings` (the deployment's environment), and `ui`
  (the Gradio Blocks, `build_app`, and `serve`, which binds 127.0.0.1 unless told otherwise).

A lower package never imports a higher one: `pages` may import `data`, `controls` both.
Importing this package imports no Gradio; `from space.controls.ui import build_app` does.
"""
