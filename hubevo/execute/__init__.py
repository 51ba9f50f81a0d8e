"""Stage 2's engine: where candidate jobs run, and racing over them.

- `runner`: one candidate job, from recipe to scores (fine-tune once, materialise, score), in one process;
- `backends`: the backends by name: `local` (this process, module `local`) and `ray` (Ray actors, `ray_backend`);
- `racing`: successive halving over a generation's candidates, as a policy over any backend.
"""
