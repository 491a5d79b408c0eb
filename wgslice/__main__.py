import sys

from wgslice.cli import main

sys.exit(main())
