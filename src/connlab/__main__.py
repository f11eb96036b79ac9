import sys

from connlab.cli import main

sys.exit(main())
