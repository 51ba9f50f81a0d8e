"""Every huggingface_hub call of the project lives in this package (the Hub edge).

- `client`: one `HfApi`, retries, and failures translated into errors that name the repo (never a token);
- `download` (members, datasets, files), `listing` (a query's models, a model's info), `repos`
  (create, commit, tag, read cards and folders), `access` (who the token is, where it may write);
- `cards` (the champion and results cards), `eval_results` (scores as `.eval_results`), `licenses`
  (a child's license from its parents'), `jobs` (Hugging Face Jobs), `webhooks` (the webhook server).
"""
