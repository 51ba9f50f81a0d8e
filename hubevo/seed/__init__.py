"""Stage 1, seed: the population, resolved to folders and checked before any weights move.

- `members`: a member resolved (folder or pinned Hub snapshot) and compared from `config.json` and the
  tokenizer; `weights`: its safetensors checked; `population`: the run's members, all checks done;
- `discover`: the compatible models of a Hub query; `immigrants`: which webhook events bring one.
"""
