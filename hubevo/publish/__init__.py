"""Stage 6, publish: survivors to folders and to the Hub, and what every report says of them.

- `resolver`: what an individual id means here (the folder its weights load from, its card name,
  recipe, Hub repo); `rebuild`: any individual's weights rebuilt from its recipe, on demand;
- `cards`: a survivor's lineage card; `tables`: `results.parquet`, `lineage.json`, the leaderboard;
  `decision`: the champion's lead in words; `front`: the Pareto plot; `report`: the terminal's lines;
- `export`: any individual's full folder with its card (`hubevo export`, and a push's weights);
- `hub`: survivors, champions and the results dataset pushed to the Hub (calls in `hubevo.hub`).
"""
