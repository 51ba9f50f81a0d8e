"""The hubevo Space: a Gradio app over finished and running evolutions.

- `data`: run directories and results datasets -> leaderboard, family tree, per-generation
  stats, model detail and run status tables (pure functions of what the loop wrote);
- `catalog`: the runs shown, re-read when they change; `settings`: deployment settings from the environment;
- `tree`: the family tree picture; `charts`: fitness and held-out score per generation;
- `auth`: who may seed, pause and stop runs (allow-listed Hugging Face login or an admin token);
- `seeding`: the seeding form -> a validated run config;
- `controller`: what the UI asks of the scheduler;
- `ui`: the Gradio Blocks, `build_app`, and `serve` (binds 127.0.0.1 unless told otherwise).

Importing this package imports no Gradio; `from space.ui import build_app` does.
"""
