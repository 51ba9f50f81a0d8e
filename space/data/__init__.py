"""The Space's lowest layer: reading runs (local folders, results datasets) and their numbers, never writing.

Nothing here imports `space.pages` or `space.controls`, and nothing here imports Gradio.
"""
