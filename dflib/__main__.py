import sys

from dflib.cli import main

sys.exit(main())
