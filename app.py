"""hubevo entry point: `python app.py [demo | evolve run.yaml [--resume] | worker run.yaml | space]`.

With no arguments it is the Space: the scheduler in the background and the Gradio UI.
The same commands are installed as the `hubevo` console script.
"""

import sys

from hubevo.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
