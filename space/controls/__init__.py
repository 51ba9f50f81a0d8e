"""The Space's acting side: who may act (`auth`), what seeding queues or launches (`seeding`, `jobs`), what is
asked of the scheduler (`controller`), the deployment's settings, and the Gradio app wiring it all (`ui`).

Controls may import `space.data` and `space.pages`; neither imports them.
"""
