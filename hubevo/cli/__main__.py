import sys

from hubevo.cli.main import main

sys.exit(main())
