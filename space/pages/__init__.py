"""The Space's tabs as views: pure functions of `space.data.loading.RunData` -> tables, markdown and figures.

Pages read `space.data` and never `space.controls`; the Gradio wiring that shows them is `space.controls.ui`.
"""
